"""``fjernhjelp support-session new|list|cancel|connect``: the technician's Support sessions.

Not ``support``: that is the end user's one-time client (``fjernhjelp support CODE``).
Thin over the API (technician/support.py); what connecting offers is `connect`'s own.
"""

import asyncio
from typing import TYPE_CHECKING, Annotated, Any

import typer

from fjernhjelp.cli import connect as access
from fjernhjelp.cli.common import (
    GetOption,
    OverwriteOption,
    PutOption,
    VncOption,
    console,
    err,
    real,
    sub_app,
)

if TYPE_CHECKING:
    from fjernhjelp.technician.api import Api
    from fjernhjelp.technician.tunnel import OpenedSupport

app = sub_app("The technician's Support sessions: one-time sessions joined with a code.")

_STATE_TEXT = {
    "waiting": "waiting for the end user to enter the code",
    "joined": "the end user entered the code; their program is starting",
    "running": "running",
    "expired": "the code expired",
    "cancelled": "cancelled",
    "ended": "ended",
}


def _english(key: str, **values: object) -> str:
    from fjernhjelp.i18n import Translator

    return Translator("en")(key, **values)


@app.command("customers")
def customers() -> None:
    """The customers whose agreement lets you start a Support session."""
    from fjernhjelp.technician import support
    from fjernhjelp.technician.api import Api

    creds = access.load_credentials()
    with Api(creds.server, creds.token) as api, access.reporting():
        offered = support.customers(api)
    if not offered:
        err.print(_english("console.support_no_customers"))
        raise typer.Exit(1)
    for customer in offered:
        console.print(
            f"{customer['name']}  ({customer['orgnr']})  {customer['id']}",
            markup=False,
            soft_wrap=True,
        )


@app.command("new")
def new(
    customer: Annotated[
        str | None,
        typer.Argument(
            help="The customer: name, organisation number or id. Without it: a choice of "
            "the customers whose agreement allows Support."
        ),
    ] = None,
) -> None:
    """Make a code for a customer's end user; prints the code in groups of three and the link."""
    from rich.markup import escape

    from fjernhjelp.technician import support
    from fjernhjelp.technician.api import Api

    creds = access.load_credentials()
    with Api(creds.server, creds.token) as api, access.reporting():
        try:
            customer_id = (
                support.resolve_customer(api, customer)
                if customer is not None
                else _choose(support.customers(api))
            )
        except support.NotFound as exc:
            err.print(f"[red]{exc}[/red]", soft_wrap=True)
            raise typer.Exit(1) from exc
        created = support.create(api, customer_id)
    # soft_wrap: an id, a code or a link cut in two by the terminal's width is of no use.
    for line in (
        f"Support session for [bold]{escape(created['customer'])}[/bold]",
        f"id: {created['id']}",
        f"{_english('console.support_code')}: [bold]{created['code_grouped']}[/bold]",
        f"{_english('console.support_link')}: {escape(created['link'])}",
        f"{_english('console.support_expires')}: {_short_time(created['expires_at'])}",
    ):
        console.print(line, soft_wrap=True, highlight=False)
    err.print(_english("console.support_read_code"))
    err.print(_english("console.support_code_once"))
    err.print(
        f"then: fjernhjelp support-session connect {created['id'][:8]} --vnc 127.0.0.1:5901",
        soft_wrap=True,
        markup=False,
    )


def _choose(offered: list[dict[str, Any]]) -> str:
    """A numbered choice at the terminal; a script names the customer instead."""
    import sys

    if not offered:
        err.print(_english("console.support_no_customers"))
        raise typer.Exit(1)
    if len(offered) == 1:
        return str(offered[0]["id"])
    if not sys.stdin.isatty():
        err.print("several customers allow Support: name one (see `support-session customers`)")
        raise typer.Exit(2)
    for number, customer in enumerate(offered, 1):
        console.print(f"{number:3}. {customer['name']} ({customer['orgnr']})", markup=False)
    picked = typer.prompt(_english("console.support_choose"), type=int)
    if not 1 <= picked <= len(offered):
        err.print("no such number")
        raise typer.Exit(2)
    return str(offered[picked - 1]["id"])


@app.command("list")
def list_() -> None:
    """Your Support sessions, newest first, with their state."""
    from rich.table import Table

    from fjernhjelp.technician import support
    from fjernhjelp.technician.api import Api

    creds = access.load_credentials()
    with Api(creds.server, creds.token) as api, access.reporting():
        rows = support.sessions(api)
    if not rows:
        console.print("no Support sessions")
        return
    lines = [
        (
            row["id"],
            row["customer"],
            _english(f"support.state.{row['state']}"),
            _short_time(row["requested_at"]),
            _short_time(row["expires_at"]) if row["state"] == "waiting" else "",
        )
        for row in rows
    ]
    if not real(console).is_terminal:
        # For scripts and pipes: one session a line, tab-separated, never wrapped.
        for line in lines:
            console.print("\t".join(line), markup=False, soft_wrap=True, highlight=False)
        return
    table = Table("id", "customer", "state", "made", "code expires")
    table.columns[0].no_wrap = True
    for line in lines:
        table.add_row(*line)
    real(console).print(table)


def _short_time(value: str | None) -> str:
    return value.replace("T", " ")[:16] + " UTC" if value else ""


@app.command("cancel")
def cancel(
    session: Annotated[str, typer.Argument(help="The session's id (or its first characters).")],
) -> None:
    """Cancel one of your Support sessions before it runs (the end user's program exits)."""
    from fjernhjelp.technician import support
    from fjernhjelp.technician.api import Api

    creds = access.load_credentials()
    with Api(creds.server, creds.token) as api, access.reporting():
        try:
            row = support.resolve_session(api, session)
        except support.NotFound as exc:
            err.print(f"[red]{exc}[/red]", soft_wrap=True)
            raise typer.Exit(1) from exc
        done = support.cancel(api, row["id"])
    console.print(f"{done['id']}: {_english('support.state.' + done['state'])}")


def connect(
    session: Annotated[str, typer.Argument(help="The session's id (or its first characters).")],
    shell: Annotated[
        bool, typer.Option("--shell", help="A shell, if the end user ticked it.")
    ] = False,
    get: GetOption = None,
    put: PutOption = None,
    overwrite: OverwriteOption = False,
    vnc: VncOption = None,
    chat: Annotated[
        bool, typer.Option("--chat", help="Chat with the end user, line by line.")
    ] = False,
    wait: Annotated[
        float,
        typer.Option(
            "--wait", help="Seconds to wait for the end user (0: until the code expires)."
        ),
    ] = 0,
) -> None:
    """Wait for the end user to join, open the tunnel, show the check words, then as
    `fjernhjelp connect`: a local VNC port, chat, file copy or a shell."""
    from fjernhjelp.technician import support
    from fjernhjelp.technician.api import Api

    listen = access.check_options(shell=shell, run_as=None, get=get, put=put, vnc=vnc, chat=chat)
    creds = access.load_credentials()
    with Api(creds.server, creds.token) as api, access.reporting():
        try:
            row = support.resolve_session(api, session)
        except support.NotFound as exc:
            err.print(f"[red]{exc}[/red]", soft_wrap=True)
            raise typer.Exit(1) from exc

        async def run() -> int:
            opened = await _open(api, row, wait or None)
            return await access.use(
                opened,
                shell=shell,
                run_as=None,
                get=get,
                put=put,
                listen=listen,
                overwrite=overwrite,
                chat=chat,
            )

        try:
            code = asyncio.run(run())
        except support.SessionOver as exc:
            err.print(f"[red]cannot connect: {_STATE_TEXT.get(exc.state, exc.state)}[/red]")
            raise typer.Exit(1) from exc
        except TimeoutError as exc:
            err.print(f"[red]{exc}[/red]")
            raise typer.Exit(1) from exc
        except KeyboardInterrupt:
            # The session is closed with the event loop; the end user's program exits.
            err.print("stopped")
            raise typer.Exit(130) from None
    raise typer.Exit(code)


app.command("connect")(connect)


async def _open(api: "Api", row: dict[str, Any], wait: float | None) -> "OpenedSupport":
    """Wait for the end user with a spinner, open the tunnel, show the check words."""
    from fjernhjelp.technician import support

    name = f"Support session for {row['customer']}" if row["customer"] else "Support session"
    with real(err).status(f"{name}: …") as status:

        def on_state(state: str) -> None:
            said = _STATE_TEXT.get(state, state)
            status.update(f"{name}: {said}")
            err.print(said, markup=False)  # kept in the scrollback (and in logs)

        opened = await support.open_when_joined(
            api, row["id"], on_state=on_state, on_control=access.on_control, patience=wait
        )
    _show_check_words(opened.sas, opened.sas_digits)
    return opened


def _show_check_words(words: str, digits: str) -> None:
    from rich.panel import Panel

    real(err).print(
        Panel(
            f"[bold]{words.upper()}[/bold]\n{_english('support.sas.digits', digits=digits)}",
            title=_english("support.sas.title"),
            expand=False,
        )
    )
    err.print(_english("support.sas.read_aloud", words=words), soft_wrap=True, markup=False)
    err.print(
        "If the end user sees other words, end the session (Ctrl-C): someone may be in "
        "between. Report it to your administrator.",
        soft_wrap=True,
        markup=False,
    )
