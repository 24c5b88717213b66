"""``fjernhjelp login`` / ``logout`` / ``whoami``: a technician session for the CLI."""

import contextlib
import sys
from datetime import UTC, datetime
from typing import Annotated

import typer

from fjernhjelp.cli.common import console, err

Server = Annotated[
    str,
    typer.Option(
        "--server",
        envvar="FJERNHJELP_SERVER",
        help="The server's URL, e.g. https://fjernhjelp.example.no",
    ),
]


def login(
    server: Server,
    username: Annotated[str, typer.Option("--username", "-u", prompt=True)],
    password_stdin: Annotated[
        bool, typer.Option(help="Read the password, then the code, from standard input.")
    ] = False,
) -> None:
    """Log in with password and second factor; the session is stored for later commands."""
    from fjernhjelp.technician import credentials
    from fjernhjelp.technician.api import Api, ApiError

    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = typer.prompt("Password", hide_input=True)
    with Api(server) as api:
        try:
            pending = api.login(username, password)
            prompt = (
                "YubiKey OTP or authenticator code"
                if "yubico" in pending.factors
                else ("Authenticator code")
            )
            code = sys.stdin.readline().strip() if password_stdin else typer.prompt(prompt)
            session = api.factor(pending.token, code)
        except ApiError as exc:
            err.print(f"[red]login refused: {exc.error}[/red]")
            raise typer.Exit(1) from exc
    path = credentials.save(
        credentials.Credentials(
            server=server.rstrip("/"),
            username=username,
            token=session["token"],
            expires_at=session["expires_at"],
        )
    )
    console.print(f"logged in as [bold]{username}[/bold]; session stored in {path}")
    _show_notices(server, session["token"])


def _show_notices(server: str, token: str) -> None:
    """Notices to this person (their account was re-enrolled) are shown at login, as
    the web shows them; they stay until read in the browser, which shows them at login."""
    from fjernhjelp.technician.api import Api, ApiError

    with Api(server, token) as api, contextlib.suppress(ApiError):
        for notice in api.me().get("notices", []):
            err.print(f"[yellow]{notice['text']}[/yellow]")


def logout() -> None:
    """End the stored session on the server and forget it here."""
    from fjernhjelp.technician import credentials
    from fjernhjelp.technician.api import Api, ApiError

    try:
        creds = credentials.load()
    except credentials.CredentialsError:
        console.print("not logged in")
        return
    # Already expired on the server is fine: forgetting it here is what matters.
    with Api(creds.server, creds.token) as api, contextlib.suppress(ApiError):
        api.logout()
    credentials.forget()
    console.print("logged out")


def whoami() -> None:
    """Show the account the stored session belongs to."""
    from fjernhjelp.technician import credentials
    from fjernhjelp.technician.api import Api, ApiError

    try:
        creds = credentials.load()
    except credentials.CredentialsError as exc:
        err.print(str(exc))
        raise typer.Exit(1) from exc
    if creds.expired(datetime.now(UTC)):
        err.print("the stored session has expired: run `fjernhjelp login`")
        raise typer.Exit(1)
    with Api(creds.server, creds.token) as api:
        try:
            me = api.me()
        except ApiError as exc:
            err.print(f"[red]{exc.error}[/red]: run `fjernhjelp login`")
            raise typer.Exit(1) from exc
    console.print(
        f"{me['display_name']} ({me['username']}), {me['organisation']['name']}; "
        f"roles: {', '.join(me['roles'])}; factor: {me['factor_used']}"
    )
