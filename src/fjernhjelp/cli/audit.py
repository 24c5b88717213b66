"""``fjernhjelp audit``: verify the hash chain, export events."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from sqlalchemy import select

from fjernhjelp.audit.export import export_lines
from fjernhjelp.audit.verify import count_events, verify_chain
from fjernhjelp.cli.common import DatabaseUrl, DataDir, console, err, settings_from
from fjernhjelp.db.engine import make_engine, make_session_factory
from fjernhjelp.portal.models import Organisation

app = typer.Typer(help="The audit log.", no_args_is_help=True)


@app.command()
def verify(data_dir: DataDir = None, database_url: DatabaseUrl = None) -> None:
    """Check that no event was edited, deleted or reordered. Exits 1 if one was."""
    settings = settings_from(data_dir, database_url)
    factory = make_session_factory(make_engine(settings.effective_database_url), deferred=True)
    with factory() as db:
        total = count_events(db)
        with Progress(
            TextColumn("verifying"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=err,
            transient=True,
        ) as bar:
            task = bar.add_task("verify", total=total)
            result = verify_chain(db, progress=lambda n: bar.advance(task, n))
    if result.ok:
        console.print(f"audit log intact: {result.checked} events")
        return
    err.print(f"[red]audit log broken at event {result.first_bad_seq}: {result.problem}[/red]")
    err.print(f"{result.checked} events before it are intact.")
    raise typer.Exit(1)


@app.command()
def export(
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="File (default stdout).")
    ] = None,
    org_number: Annotated[str | None, typer.Option(help="Only this organisation's events.")] = None,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Write events as JSON Lines, oldest first."""
    settings = settings_from(data_dir, database_url)
    factory = make_session_factory(make_engine(settings.effective_database_url), deferred=True)
    with factory() as db:
        org_id = None
        if org_number:
            org_id = db.execute(
                select(Organisation.id).where(Organisation.orgnr == org_number)
            ).scalar_one_or_none()
            if org_id is None:
                err.print(f"[red]no organisation {org_number}[/red]")
                raise typer.Exit(2)
        out = output.open("w", encoding="utf-8") if output else sys.stdout
        count = 0
        try:
            for line in export_lines(db, org_id):
                out.write(line + "\n")
                count += 1
        finally:
            if output:
                out.close()
    if output:
        console.print(f"{count} events written to {output}")
