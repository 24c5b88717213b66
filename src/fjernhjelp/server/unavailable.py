"""When the database (or, with several nodes, Redis) cannot take a request: a clear 503,
never a 500.

The database unreachable (a cut connection, a refused one, a pool that waits in vain) or
out of room (a full disk while the audit event is written) ends the request's transaction
without a commit: the change and its audit event are both undone, so nothing was done.
The answer says that, with Retry-After, as a problem document or a message page; the log
line names the kind of failure, never the statement or its parameters (they can hold a
password hash or a token). Redis unreachable means this node cannot tell where an agent
is or reach the other nodes: the request is refused the same way until it is back.
"""

from __future__ import annotations

import enum
import logging
import sqlite3

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeout
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.exc import TimeoutError as PoolTimeout

_log = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 5
# PostgreSQL's class 53, "insufficient resources": disk_full (53100), out of memory, ...
_PG_NO_ROOM = "53"
_PG_UNREACHABLE = ("08", "57P")  # connection exceptions; admin or crash shutdown


class Unavailable(enum.StrEnum):
    DATABASE = "database_unavailable"
    STORAGE_FULL = "storage_full"
    CLUSTER = "cluster_unavailable"

    @property
    def sentence_key(self) -> str:
        return {
            Unavailable.DATABASE: "unavailable.database",
            Unavailable.STORAGE_FULL: "unavailable.storage_full",
            Unavailable.CLUSTER: "unavailable.cluster",
        }[self]


def classify(exc: BaseException) -> Unavailable | None:
    """Which outage ``exc`` shows, or None when it is a fault of the code (a 500)."""
    if isinstance(exc, PoolTimeout | DisconnectionError):
        return Unavailable.DATABASE
    if isinstance(exc, RedisConnectionError | RedisTimeout):
        return Unavailable.CLUSTER
    if not isinstance(exc, DBAPIError):
        return None
    orig = exc.orig
    if isinstance(orig, sqlite3.Error):
        code = getattr(orig, "sqlite_errorcode", 0) & 0xFF
        if code == sqlite3.SQLITE_FULL:
            return Unavailable.STORAGE_FULL
        unreachable = (
            sqlite3.SQLITE_CANTOPEN,
            sqlite3.SQLITE_IOERR,
            sqlite3.SQLITE_BUSY,
            sqlite3.SQLITE_READONLY,
            sqlite3.SQLITE_PERM,
        )
        return Unavailable.DATABASE if code in unreachable else None
    sqlstate = getattr(orig, "sqlstate", None) or ""
    if sqlstate.startswith(_PG_NO_ROOM):
        return Unavailable.STORAGE_FULL
    if exc.connection_invalidated or sqlstate.startswith(_PG_UNREACHABLE):
        return Unavailable.DATABASE
    # psycopg raises OperationalError without a state when it cannot connect at all.
    if not sqlstate and type(orig).__name__ in ("OperationalError", "InterfaceError"):
        return Unavailable.DATABASE
    return None


def log(kind: Unavailable, exc: BaseException, method: str, path: str) -> None:
    orig = getattr(exc, "orig", None)
    what = type(orig or exc).__name__
    _log.error("refused %s %s: %s (%s)", method, path, kind.value, what)
