"""Process logging: to stderr, a file or syslog, chosen in the settings.

Nothing here ever formats a request body; handlers log ids and outcomes, not values,
so a password or code cannot end up in a log line.

A database error is the one exception whose text holds values: SQLAlchemy's adds the
statement's parameters (the engine is told to hide them, db/engine.py) and the
database's own message may quote a row ("Key (token_hash)=(...) already exists", a
trigger's text). So code that logs a failure logs :func:`fault` (kinds and a place,
never a message), and :class:`WithholdDatabaseErrors` keeps such text out of every
line that still carries one (uvicorn's "Exception in ASGI application", a
``_log.exception`` somewhere): the traceback's frames stay, the messages go.
"""

from __future__ import annotations

import logging
import logging.handlers
import re
import sqlite3
import sys
import traceback
from pathlib import PurePath

from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from fjernhjelp.config import Settings

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# A one-time enrolment link is a credential until it is used, and so is a Support code in
# the link the technician sends (/s/{code}); the access log would otherwise write them
# down with every request path.
_ENROL_TOKEN = re.compile(r"(/enroll/|/s/)[^\s?\"]+")


class RedactEnrolmentLinks(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                _ENROL_TOKEN.sub(r"\1[redacted]", a) if isinstance(a, str) else a
                for a in record.args
            )
        if isinstance(record.msg, str):
            record.msg = _ENROL_TOKEN.sub(r"\1[redacted]", record.msg)
        return True


def _is_database_error(exc: BaseException) -> bool:
    if isinstance(exc, SQLAlchemyError | sqlite3.Error):
        return True
    # psycopg's errors, without importing a driver a SQLite node does not have.
    return type(exc).__module__.split(".")[0] in ("psycopg", "psycopg2")


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and what caused it (or was being handled), outermost first."""
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and all(current is not seen for seen in chain):
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def _where(exc: BaseException) -> str | None:
    """The innermost frame in this package: where our code met the failure."""
    ours = [
        frame
        for frame in traceback.extract_tb(exc.__traceback__)
        if "fjernhjelp" in PurePath(frame.filename).parts
    ]
    if not ours:
        return None
    frame = ours[-1]
    parts = PurePath(frame.filename).parts
    short = "/".join(parts[len(parts) - parts[::-1].index("fjernhjelp") :])
    return f"{short}:{frame.lineno} in {frame.name}"


def fault(exc: BaseException) -> str:
    """A failure in one short line without its message: the exception's kind, the
    driver's and the database's error code, and where in our code it surfaced. Safe to
    log whatever the statement's parameters or the row were."""
    kinds = [type(exc).__name__]
    orig = exc.orig if isinstance(exc, DBAPIError) else None
    if orig is not None:
        kinds.append(f"{type(orig).__module__}.{type(orig).__name__}")
        code = getattr(orig, "sqlstate", None) or getattr(orig, "sqlite_errorname", None)
        if code:
            kinds.append(str(code))
    where = _where(exc)
    return " ".join(kinds) + (f" at {where}" if where else "")


def _withheld_traceback(exc: BaseException) -> str:
    """The traceback's frames (file, line, function, source line) with every
    exception's message replaced by its kind."""
    lines: list[str] = []
    for link in reversed(_chain(exc)):
        lines.append("Traceback (most recent call last):\n")
        lines.extend(traceback.format_list(traceback.extract_tb(link.__traceback__)))
        lines.append(f"{type(link).__module__}.{type(link).__name__}: [message withheld]\n")
    return "".join(lines).rstrip("\n")


class WithholdDatabaseErrors(logging.Filter):
    """Lines that carry a database error, as their traceback or as an argument, keep its
    kind and frames but not its text (see the module's docstring)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            if any(_is_database_error(link) for link in _chain(exc)):
                record.exc_text = _withheld_traceback(exc)
                record.exc_info = None
        if isinstance(record.args, tuple):
            record.args = tuple(
                fault(a) if isinstance(a, BaseException) and _is_database_error(a) else a
                for a in record.args
            )
        return True


def configure(settings: Settings) -> None:
    handler: logging.Handler
    if settings.log_destination == "file":
        path = settings.log_file or settings.data_dir / "fjernhjelp.log"
        path.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.handlers.WatchedFileHandler(path)
    elif settings.log_destination == "syslog":
        handler = logging.handlers.SysLogHandler(address="/dev/log")
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.addFilter(RedactEnrolmentLinks())
    handler.addFilter(WithholdDatabaseErrors())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level.upper())


# uvicorn (and the websockets protocol it runs, which logs to uvicorn.error) writes three
# INFO lines for every WebSocket: accepted, open, closed. Twenty thousand agents coming
# back would write sixty thousand lines the audit log already holds as events (the lean
# listener is quiet the same way, server/agent_listener.py). Refusals, rejections and
# errors keep their level.
_CONNECTION_CHATTER = frozenset(
    {'%s - "WebSocket %s" [accepted]', "connection open", "connection closed"}
)


class QuietConnections(logging.Filter):
    """On uvicorn.error: each WebSocket's accepted/open/closed line at DEBUG."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.INFO and record.msg in _CONNECTION_CHATTER:
            record.levelno = logging.DEBUG
            record.levelname = logging.getLevelName(logging.DEBUG)
            return logging.getLogger().isEnabledFor(logging.DEBUG)
        return True


def uvicorn_log_config() -> dict[str, object]:
    # Let uvicorn's loggers propagate to the root handler configured above. Its access
    # log prints the path and query string only; no handler puts secrets in a query.
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"quiet_connections": {"()": QuietConnections}},
        "loggers": {
            "uvicorn": {"level": "INFO", "propagate": True},
            "uvicorn.error": {
                "level": "INFO",
                "propagate": True,
                "filters": ["quiet_connections"],
            },
            "uvicorn.access": {"level": "INFO", "propagate": True},
        },
    }
