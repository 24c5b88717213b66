"""Options every command shares, and how they become Settings.

Nothing here imports the server's settings or rich at import time: every command module
imports this, and `fjernhjelp --help` (or the agent) should not pay for what it never uses.
"""

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypedDict

import typer

if TYPE_CHECKING:
    from rich.console import Console
    from sqlalchemy.orm import Session

    from fjernhjelp.config import Settings
    from fjernhjelp.refusals import Refusal


class _LazyConsole:
    """A rich Console made on first use."""

    def __init__(self, **options: Any) -> None:
        self._options = options
        self._console: Console | None = None

    def _get(self) -> "Console":
        if self._console is None:
            from rich.console import Console

            self._console = Console(**self._options)
        return self._console

    def __getattr__(self, name: str) -> Any:
        return getattr(self._get(), name)


def sub_app(help_text: str) -> typer.Typer:
    """A command group, formatted like the top-level command (see cli/__init__.py)."""
    return typer.Typer(help=help_text, no_args_is_help=True, rich_markup_mode=None)


def real(lazy: "Console") -> "Console":
    """The Console itself, for rich objects that use it directly (progress bars)."""
    return lazy._get() if isinstance(lazy, _LazyConsole) else lazy


# Typed as the Console they stand in for, so every use is checked against rich's API;
# the stand-in forwards each attribute to the real one.
console: "Console" = _LazyConsole()  # type: ignore[assignment]  # lazy stand-in, see above
err: "Console" = _LazyConsole(stderr=True)  # type: ignore[assignment]  # lazy stand-in


def refused(db: "Session", exc: "Refusal", subject: str) -> NoReturn:
    """End a command a service refused: keep the refusal's audit event, if the service
    recorded one (the command line is as accountable as the web), say why, exit 2."""
    from fjernhjelp.i18n import Translator

    if exc.recorded:
        db.commit()  # the service undid its change; only the event is left to keep
    err.print(f"[red]{subject}: {Translator('en')(exc.sentence_key)}[/red]")
    raise typer.Exit(2) from exc


DataDir = Annotated[
    Path | None,
    typer.Option("--data-dir", help="Data directory (default: FJERNHJELP_DATA_DIR or ./var)."),
]
DatabaseUrl = Annotated[
    str | None,
    typer.Option("--database-url", help="SQLAlchemy URL (default: SQLite in the data directory)."),
]


def load_models() -> None:
    """Import every model, so relationships between packages resolve (commands that use
    the database call this; the server's app does it by importing everything)."""
    import fjernhjelp.db.models  # noqa: F401


class _Overrides(TypedDict, total=False):
    """Settings given on the command line; an option left out is not passed at all, so
    the environment (and the config file) still decide it."""

    data_dir: Path
    database_url: str
    bind: str


def settings_from(
    data_dir: Path | None = None, database_url: str | None = None, *, bind: str | None = None
) -> "Settings":
    from fjernhjelp.config import Settings

    overrides = _Overrides()
    if bind is not None:
        overrides["bind"] = bind
    if data_dir is not None:
        overrides["data_dir"] = data_dir
    if database_url is not None:
        overrides["database_url"] = database_url
    return Settings(**overrides)


# The options every session command offers the same way (connect, support-session connect).
GetOption = Annotated[
    tuple[str, Path] | None, typer.Option("--get", help="REMOTE LOCAL: copy a file here.")
]
PutOption = Annotated[
    tuple[Path, str] | None,
    typer.Option("--put", help="LOCAL REMOTE: copy a file there (REMOTE may be a folder)."),
]
OverwriteOption = Annotated[
    bool, typer.Option("--overwrite", help="--put: replace an existing file without asking.")
]
VncOption = Annotated[
    str | None,
    typer.Option("--vnc", help="HOST:PORT (loopback): a local VNC port for any viewer."),
]
