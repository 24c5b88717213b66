"""``fjernhjelp connect MACHINE``: a shell, file copy, or a local VNC port, end to end."""

import asyncio
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from fjernhjelp.cli.common import err, real

if TYPE_CHECKING:
    from fjernhjelp.technician.api import Api

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
    get: Annotated[
        tuple[str, Path] | None, typer.Option("--get", help="REMOTE LOCAL: copy a file here.")
    ] = None,
    put: Annotated[
        tuple[Path, str] | None,
        typer.Option("--put", help="LOCAL REMOTE: copy a file there (REMOTE may be a folder)."),
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="--put: replace an existing file without asking.")
    ] = False,
    vnc: Annotated[
        str | None,
        typer.Option("--vnc", help="HOST:PORT (loopback): a local VNC port for any viewer."),
    ] = None,
) -> None:
    """Connect to a machine you are granted, through the end-to-end tunnel."""

    from fjernhjelp.streams.desktop.technician import NotLoopback, parse_listen
    from fjernhjelp.technician import credentials
    from fjernhjelp.technician.api import Api, ApiError
    from fjernhjelp.technician.tunnel import MachineNotFound, resolve_machine
    from fjernhjelp.tunnel import ChannelClosed, StreamRefused, TunnelClosed, TunnelError

    if sum(bool(x) for x in (shell, get, put, vnc)) != 1:
        err.print("choose exactly one of --shell, --get, --put, --vnc")
        raise typer.Exit(2)
    if run_as not in (None, "user", "service"):
        err.print("--as: choose user or service", markup=False)
        raise typer.Exit(2)
    listen = None
    if vnc:
        try:
            listen = parse_listen(vnc)
        except (NotLoopback, ValueError) as exc:
            err.print(f"[red]--vnc: {exc} (the port has no password: loopback only)[/red]")
            raise typer.Exit(2) from exc
    try:
        creds = credentials.load()
    except credentials.CredentialsError as exc:
        err.print(str(exc))
        raise typer.Exit(1) from exc
    with Api(creds.server, creds.token) as api:
        try:
            target = resolve_machine(api, machine)
            code = asyncio.run(
                _run(
                    api,
                    target,
                    shell=shell,
                    run_as=run_as,
                    get=get,
                    put=put,
                    listen=listen,
                    overwrite=overwrite,
                )
            )
        except (ApiError, MachineNotFound) as exc:
            err.print(f"[red]refused: {getattr(exc, 'error', exc)}[/red]")
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
    raise typer.Exit(code)


def _confirm_overwrite(path: str) -> bool:
    """Asks on a terminal; without one (a script) the answer is no: use --overwrite."""
    if not sys.stdin.isatty():
        err.print(f"{path} already exists on the machine (--overwrite replaces it)", markup=False)
        return False
    return typer.confirm(f"{path} already exists on the machine. Replace it?", default=False)


def _on_control(message: dict[str, Any]) -> None:
    if message.get("type") == "consent":
        err.print(CONSENT_TEXT.get(str(message.get("state")), str(message.get("state"))))


async def _run(
    api: "Api",
    target: dict[str, Any],
    *,
    shell: bool,
    run_as: str | None,
    get: tuple[str, Path] | None,
    put: tuple[Path, str] | None,
    listen: tuple[str, int] | None = None,
    overwrite: bool = False,
) -> int:

    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    from fjernhjelp.streams.desktop.technician import serve_local_vnc
    from fjernhjelp.streams.files.technician import get_file, put_file
    from fjernhjelp.streams.files.wire import FileExists
    from fjernhjelp.streams.shell.technician import run_shell_client
    from fjernhjelp.streams.shell.wire import ShellError, ShellOffer
    from fjernhjelp.technician.tunnel import open_session

    err.print(f"connecting to {target['hostname']} ({target['customer']['name']})")
    session = await open_session(api, target["id"], on_control=_on_control)
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
