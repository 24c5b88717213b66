"""``fjernhjelp connect MACHINE``: a shell, file copy, or a local VNC port, end to end."""

import asyncio
import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from fjernhjelp.cli.common import (
    GetOption,
    OverwriteOption,
    PutOption,
    VncOption,
    console,
    err,
    real,
)

if TYPE_CHECKING:
    from fjernhjelp.technician.credentials import Credentials
    from fjernhjelp.technician.tunnel import OpenedSession

# The tunnel, the API client and rich's progress bars are imported when a connection is
# made: `fjernhjelp --help` must start quickly (issue 9).

CONSENT_TEXT = {
    "asked": "waiting for the end user to allow the session…",
    "given": "the end user allowed the session",
    "not_required": "pre-approved session (no consent needed)",
    "denied": "the end user denied the session",
    "timed_out": "the end user did not answer in time",
    "no_display": "nobody is at the machine's screen to allow the session",
}


def connect(
    machine: Annotated[str, typer.Argument(help="Machine id or host name.")],
    shell: Annotated[bool, typer.Option("--shell", help="Open an interactive shell.")] = False,
    run_as: Annotated[
        str | None,
        typer.Option(
            "--as",
            help="user (the person at the machine) or service (the agent's own account; "
            "needs 'terminal as administrator'). Default: what the machine offers, "
            "the user first.",
        ),
    ] = None,
    get: GetOption = None,
    put: PutOption = None,
    overwrite: OverwriteOption = False,
    vnc: VncOption = None,
    chat: Annotated[
        bool, typer.Option("--chat", help="Chat with the user at the machine, line by line.")
    ] = False,
) -> None:
    """Connect to a machine you are granted, through the end-to-end tunnel."""
    from fjernhjelp.technician.api import Api
    from fjernhjelp.technician.tunnel import resolve_machine

    listen = check_options(shell=shell, run_as=run_as, get=get, put=put, vnc=vnc, chat=chat)
    creds = load_credentials()
    with Api(creds.server, creds.token) as api, reporting():
        target = resolve_machine(api, machine)

        async def run() -> int:
            from fjernhjelp.technician.tunnel import open_session

            err.print(f"connecting to {target['hostname']} ({target['customer']['name']})")
            session = await open_session(api, target["id"], on_control=on_control)
            return await use(
                session,
                shell=shell,
                run_as=run_as,
                get=get,
                put=put,
                listen=listen,
                overwrite=overwrite,
                chat=chat,
            )

        code = asyncio.run(run())
    raise typer.Exit(code)


def check_options(
    *,
    shell: bool,
    run_as: str | None,
    get: tuple[str, Path] | None,
    put: tuple[Path, str] | None,
    vnc: str | None,
    chat: bool,
) -> tuple[str, int] | None:
    """One thing to do per connection; the local VNC address, if that is it."""
    from fjernhjelp.streams.desktop.technician import NotLoopback, parse_listen

    if sum(bool(x) for x in (shell, get, put, vnc, chat)) != 1:
        err.print("choose exactly one of --shell, --get, --put, --vnc, --chat")
        raise typer.Exit(2)
    if run_as not in (None, "user", "service"):
        err.print("--as: choose user or service", markup=False)
        raise typer.Exit(2)
    if not vnc:
        return None
    try:
        return parse_listen(vnc)
    except (NotLoopback, ValueError) as exc:
        err.print(f"[red]--vnc: {exc} (the port has no password: loopback only)[/red]")
        raise typer.Exit(2) from exc


def load_credentials() -> "Credentials":
    from fjernhjelp.technician import credentials

    try:
        return credentials.load()
    except credentials.CredentialsError as exc:
        err.print(str(exc))
        raise typer.Exit(1) from exc


@contextlib.contextmanager
def reporting() -> Iterator[None]:
    """A refusal or the end of the session as one line and exit 1, never a traceback."""
    from fjernhjelp.technician.api import ApiError
    from fjernhjelp.technician.tunnel import MachineNotFound
    from fjernhjelp.tunnel import ChannelClosed, StreamRefused, TunnelClosed, TunnelError

    try:
        yield
    except ApiError as exc:
        from rich.markup import escape

        # The server's sentence (in English) and its stable reason, to look up or grep for.
        said = escape(exc.detail or exc.error)
        err.print(f"[red]refused: {said}[/red] ({escape(exc.error)})", soft_wrap=True)
        raise typer.Exit(1) from exc
    except MachineNotFound as exc:
        err.print(f"[red]refused: {exc}[/red]")
        raise typer.Exit(1) from exc
    except TunnelClosed as exc:
        err.print(f"[red]the session ended: {exc.name}[/red]")
        raise typer.Exit(1) from exc
    except StreamRefused as exc:
        err.print(f"[red]the machine refused: {exc.name}[/red]")
        raise typer.Exit(1) from exc
    except (TunnelError, ChannelClosed) as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc


def _confirm_overwrite(path: str) -> bool:
    """Asks on a terminal; without one (a script) the answer is no: use --overwrite."""
    if not sys.stdin.isatty():
        err.print(f"{path} already exists on the machine (--overwrite replaces it)", markup=False)
        return False
    return typer.confirm(f"{path} already exists on the machine. Replace it?", default=False)


def on_control(message: dict[str, Any]) -> None:
    if message.get("type") == "consent":
        err.print(CONSENT_TEXT.get(str(message.get("state")), str(message.get("state"))))


async def use(
    session: "OpenedSession",
    *,
    shell: bool,
    run_as: str | None,
    get: tuple[str, Path] | None,
    put: tuple[Path, str] | None,
    listen: tuple[str, int] | None = None,
    overwrite: bool = False,
    chat: bool = False,
) -> int:
    """Do the one thing asked over an open session (Access or Support), then close it."""
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    from fjernhjelp.streams.chat.technician import run_chat_client
    from fjernhjelp.streams.desktop.technician import serve_local_vnc
    from fjernhjelp.streams.files.technician import get_file, put_file
    from fjernhjelp.streams.files.wire import FileExists
    from fjernhjelp.streams.shell.technician import run_shell_client
    from fjernhjelp.streams.shell.wire import ShellError, ShellOffer

    try:
        if listen is not None:

            def listening(host: str, port: int) -> None:
                err.print(f"VNC viewers can connect to {host}:{port} (Ctrl-C to end)")

            await serve_local_vnc(
                lambda: session.tunnel.open("desktop"),
                *listen,
                on_listening=listening,
                until=session.tunnel.wait_closed(),
            )
            return 0
        if chat:
            err.print("chat: type a line and Enter to send; end with Ctrl-D", markup=False)
            return await run_chat_client(
                await session.tunnel.open("chat"),
                sys.stdin.fileno(),
                lambda text: console.print(f"> {text}", markup=False, highlight=False),
            )
        if shell:

            def offered(offer: ShellOffer, chosen: str) -> None:
                choice = offer.get(chosen)
                account = f"{choice.account} ({chosen})" if choice else chosen
                err.print(
                    f"shell as {account}; offered: {offer.describe()}", markup=False, soft_wrap=True
                )

            stream = await session.tunnel.open("shell")
            try:
                return await run_shell_client(
                    stream, sys.stdin.fileno(), sys.stdout.fileno(), run_as=run_as, on_offer=offered
                )
            except ShellError as exc:
                # One line, whatever the agent wrote: never a traceback for a refusal.
                said = " ".join(exc.message.split())
                err.print(
                    f"the machine refused the shell: {said} ({exc.code})",
                    markup=False,
                    soft_wrap=True,
                )
                return 1
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=real(err),
        ) as bar:
            task = bar.add_task("get" if get else "put", total=None)

            def progress(done: int, total: int | None) -> None:
                bar.update(task, completed=done, total=total)

            stream = await session.tunnel.open("files")
            if get:
                result = await get_file(stream, get[0], get[1], progress=progress)
            else:
                assert put is not None
                try:
                    result = await put_file(
                        stream, put[0], put[1], progress=progress, overwrite=overwrite
                    )
                except FileExists as exists:
                    bar.stop()
                    if not await asyncio.to_thread(_confirm_overwrite, exists.path):
                        err.print(
                            f"{exists.path} exists on the machine; nothing was copied",
                            markup=False,
                        )
                        return 1
                    bar.start()
                    # The refusal ended that channel; the confirmed request takes a new one.
                    stream = await session.tunnel.open("files")
                    result = await put_file(
                        stream, put[0], put[1], progress=progress, overwrite=True
                    )
        err.print(f"copied to {result.path}", soft_wrap=True, markup=False, highlight=False)
        err.print(f"{result.size} bytes, SHA-256 {result.sha256}")
        return 0
    finally:
        await session.close()
