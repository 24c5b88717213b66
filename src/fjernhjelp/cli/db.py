"""``fjernhjelp db``: schema migrations."""

from fjernhjelp.cli.common import DatabaseUrl, DataDir, console, settings_from, sub_app

app = sub_app("Database schema.")


@app.command()
def upgrade(data_dir: DataDir = None, database_url: DatabaseUrl = None) -> None:
    """Apply every migration not yet applied."""
    from fjernhjelp.db import migrate
    from fjernhjelp.db.engine import make_engine

    settings = settings_from(data_dir, database_url)
    engine = make_engine(settings.effective_database_url)
    before = migrate.current_revision(engine)
    migrate.upgrade(engine)
    after = migrate.current_revision(engine)
    console.print(f"database at revision {after} (was {before or 'empty'})")


@app.command()
def current(data_dir: DataDir = None, database_url: DatabaseUrl = None) -> None:
    """Show the applied and the newest revision."""
    from fjernhjelp.db import migrate
    from fjernhjelp.db.engine import make_engine

    settings = settings_from(data_dir, database_url)
    engine = make_engine(settings.effective_database_url)
    console.print(
        f"applied: {migrate.current_revision(engine) or 'none'}; "
        f"newest: {migrate.head_revision(engine)}"
    )
