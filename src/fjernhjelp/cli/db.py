"""``fjernhjelp db``: schema migrations."""

from __future__ import annotations

import typer

from fjernhjelp.cli.common import DatabaseUrl, DataDir, console, settings_from
from fjernhjelp.db import migrate
from fjernhjelp.db.engine import make_engine

app = typer.Typer(help="Database schema.", no_args_is_help=True)


@app.command()
def upgrade(data_dir: DataDir = None, database_url: DatabaseUrl = None) -> None:
    """Apply every migration not yet applied."""
    settings = settings_from(data_dir, database_url)
    engine = make_engine(settings.effective_database_url)
    before = migrate.current_revision(engine)
    migrate.upgrade(engine)
    after = migrate.current_revision(engine)
    console.print(f"database at revision {after} (was {before or 'empty'})")


@app.command()
def current(data_dir: DataDir = None, database_url: DatabaseUrl = None) -> None:
    """Show the applied and the newest revision."""
    settings = settings_from(data_dir, database_url)
    engine = make_engine(settings.effective_database_url)
    console.print(
        f"applied: {migrate.current_revision(engine) or 'none'}; "
        f"newest: {migrate.head_revision(engine)}"
    )
