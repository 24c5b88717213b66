"""``fjernhjelp admin``: the only way to create the first operator (never the web)."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

import typer
from sqlalchemy import select

from fjernhjelp.audit.log import Actor, Outcome, record
from fjernhjelp.auth import enrolment
from fjernhjelp.auth.accounts import AccountError, create_user
from fjernhjelp.auth.models import User
from fjernhjelp.cli.common import DatabaseUrl, DataDir, console, err, settings_from
from fjernhjelp.db import migrate
from fjernhjelp.db.base import utcnow
from fjernhjelp.portal.models import Organisation, OrgKind
from fjernhjelp.portal.orgnr import InvalidOrgnr, normalise_orgnr
from fjernhjelp.server.state import build_state

app = typer.Typer(help="Operator accounts.", no_args_is_help=True)


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
    settings = settings_from(data_dir, database_url)
    state = build_state(settings)
    migrate.upgrade(state.engine)
    try:
        orgnr = normalise_orgnr(org_number)
    except InvalidOrgnr as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc
    actor = Actor.command_line()
    with state.sessions() as db:
        org = db.execute(
            select(Organisation).where(Organisation.orgnr == orgnr)
        ).scalar_one_or_none()
        if org is None:
            org = Organisation(orgnr=orgnr, name=org_name, kind=OrgKind.OTHER)
            db.add(org)
            db.flush()
            record(
                db,
                "organisation.created",
                Outcome.SUCCESS,
                actor=actor,
                customer_org_id=org.id,
                details={"orgnr": orgnr, "name": org_name},
            )
        try:
            user = create_user(
                db,
                organisation=org,
                username=username,
                email=email,
                display_name=name,
                is_operator=True,
                is_admin=True,
                actor=actor,
            )
        except AccountError as exc:
            err.print(f"[red]cannot create operator: {exc.message_key}[/red]")
            raise typer.Exit(2) from exc
        token = enrolment.issue_link(
            db,
            user,
            actor=actor,
            now=utcnow(),
            lifetime=timedelta(hours=settings.enrolment_link_hours),
        )
        db.commit()
    console.print(
        f"Operator [bold]{user.username}[/bold] created. One-time enrolment link "
        f"(valid {settings.enrolment_link_hours} h):"
    )
    console.print(f"{settings.effective_public_url}/enroll/{token}", soft_wrap=True)


@app.command("enrolment-link")
def enrolment_link(
    username: Annotated[str, typer.Argument(help="Account to re-enrol.")],
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Issue a new one-time enrolment link (earlier unused links stop working)."""
    settings = settings_from(data_dir, database_url)
    state = build_state(settings)
    with state.sessions() as db:
        user = db.execute(
            select(User).where(User.username == username.lower())
        ).scalar_one_or_none()
        if user is None:
            err.print(f"[red]no account named {username!r}[/red]")
            raise typer.Exit(2)
        token = enrolment.issue_link(
            db,
            user,
            actor=Actor.command_line(),
            now=utcnow(),
            lifetime=timedelta(hours=settings.enrolment_link_hours),
        )
        db.commit()
    console.print(f"{settings.effective_public_url}/enroll/{token}", soft_wrap=True)
