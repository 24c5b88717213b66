"""``fjernhjelp admin``: the only way to create the first operator (never the web)."""

from datetime import timedelta
from typing import Annotated

import typer

from fjernhjelp.cli.common import (
    DatabaseUrl,
    DataDir,
    console,
    err,
    load_models,
    refused,
    settings_from,
    sub_app,
)

# Server and database modules are imported inside each command: `fjernhjelp --help`,
# and the agent on a customer machine, must not pay for (or need) them.

app = sub_app("Operator accounts and portal upkeep.")


@app.command("create-operator")
def create_operator(
    username: Annotated[str, typer.Option(help="Login name.")],
    email: Annotated[str, typer.Option(help="Email address.")],
    name: Annotated[str, typer.Option(help="Full name.")],
    org_number: Annotated[str, typer.Option(help="Operator organisation's number.")],
    org_name: Annotated[str, typer.Option(help="Operator organisation's name.")] = "Operator",
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Create an operator account and print its one-time enrolment link."""
    from fjernhjelp.caller import Caller
    from fjernhjelp.db import migrate
    from fjernhjelp.db.base import utcnow
    from fjernhjelp.portal import organisations
    from fjernhjelp.refusals import Refusal
    from fjernhjelp.server.state import build_state

    load_models()
    settings = settings_from(data_dir, database_url)
    state = build_state(settings)
    migrate.upgrade(state.engine)
    with state.db_sessions() as db:
        try:
            invitation = organisations.create_operator(
                db,
                Caller.command_line(utcnow()),
                orgnr=org_number,
                org_name=org_name,
                username=username,
                email=email,
                display_name=name,
                link_lifetime=timedelta(hours=settings.enrolment_link_hours),
            )
        except Refusal as exc:
            refused(db, exc, "cannot create operator")
        db.commit()
    console.print(
        f"Operator [bold]{invitation.user.username}[/bold] created. One-time enrolment link "
        f"(valid {settings.enrolment_link_hours} h):"
    )
    console.print(invitation.link(settings.effective_public_url), soft_wrap=True)


@app.command("enrolment-link")
def enrolment_link(
    username: Annotated[str, typer.Argument(help="Account to re-enrol.")],
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Issue a new one-time enrolment link (earlier unused links stop working). For an
    active account, using it replaces the password and factors and ends its sessions."""
    from sqlalchemy import select

    from fjernhjelp.auth.models import User, UserStatus
    from fjernhjelp.caller import Caller
    from fjernhjelp.db.base import utcnow
    from fjernhjelp.portal import members
    from fjernhjelp.refusals import Refusal
    from fjernhjelp.server.state import build_state

    load_models()
    settings = settings_from(data_dir, database_url)
    state = build_state(settings)
    with state.db_sessions() as db:
        user = db.execute(
            select(User).where(User.username == username.lower())
        ).scalar_one_or_none()
        if user is None:
            err.print(f"[red]no account named {username!r}[/red]")
            raise typer.Exit(2)
        # Whoever runs this holds the server's data directory, so may manage operator
        # accounts; the link goes through the same service as the portal's.
        try:
            invitation = members.new_link(
                db,
                Caller.command_line(utcnow()),
                user.id,
                link_lifetime=timedelta(hours=settings.enrolment_link_hours),
            )
        except Refusal as exc:
            refused(db, exc, username)
        db.commit()
    if user.status == UserStatus.ACTIVE:
        err.print(
            f"{username} is active: using this link replaces the password and second "
            "factors and ends every session of the account."
        )
    console.print(invitation.link(settings.effective_public_url), soft_wrap=True)


@app.command("sweep")
def run_sweep(data_dir: DataDir = None, database_url: DatabaseUrl = None) -> None:
    """End grants and agreements that ran out and deactivate unused accounts, now.

    The server does the same every FJERNHJELP_SWEEP_INTERVAL_SECONDS; each expiry is
    handled once, whoever gets to it first.
    """
    from fjernhjelp.portal import sweep
    from fjernhjelp.server.state import build_state

    load_models()
    settings = settings_from(data_dir, database_url)
    state = build_state(settings)
    report = sweep.run_once(
        state.db_sessions, state.now, timedelta(days=settings.inactive_user_days)
    )
    console.print(
        f"grants expired: {report.grants_expired}, agreements expired: "
        f"{report.agreements_expired}, accounts deactivated: {report.users_deactivated}, "
        f"old login sessions removed: {report.sessions_purged}"
    )


@app.command("reactivate")
def reactivate(
    username: Annotated[str, typer.Argument(help="Account to reactivate.")],
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Reactivate a deactivated account (e.g. the only operator, after a long absence)."""
    from sqlalchemy import select

    from fjernhjelp.auth.models import User, UserStatus
    from fjernhjelp.caller import Caller
    from fjernhjelp.db.base import utcnow
    from fjernhjelp.portal import members
    from fjernhjelp.refusals import Refusal
    from fjernhjelp.server.state import build_state

    load_models()
    settings = settings_from(data_dir, database_url)
    state = build_state(settings)
    with state.db_sessions() as db:
        user = db.execute(
            select(User).where(User.username == username.lower())
        ).scalar_one_or_none()
        if user is None or user.status != UserStatus.DISABLED:
            err.print(f"[red]no deactivated account named {username!r}[/red]")
            raise typer.Exit(2)
        try:
            members.reactivate(db, Caller.command_line(utcnow()), user.id)
        except Refusal as exc:  # e.g. reactivated by someone else in the meantime
            refused(db, exc, username)
        db.commit()
    console.print(f"{username} is {user.status} again.")
