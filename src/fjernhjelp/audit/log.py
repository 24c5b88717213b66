"""Appending audit events, in the caller's transaction.

An event is written in the same transaction as the change it records: if the change
rolls back, so does its event, and no change commits without one.
"""

from __future__ import annotations

import enum
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Connection, Table, bindparam, insert, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from fjernhjelp import metrics
from fjernhjelp.audit.chain import canonical_details, event_hash, fields_of
from fjernhjelp.audit.models import AuditEvent, AuditHead
from fjernhjelp.db.base import utcnow

if TYPE_CHECKING:
    from fjernhjelp.auth.models import User


class Outcome(enum.StrEnum):
    SUCCESS = "success"
    FAILURE = "failure"  # the actor tried and failed (wrong code, bad signature)
    DENIED = "denied"  # policy refused it (locked, no grant, suspended)
    INFO = "info"  # something happened that is neither (a lockout started)


# Keys that would carry a secret if a caller passed one by mistake. Refusing them here
# keeps secrets out of the log even when a caller forgets.
_SECRET_KEYS = frozenset({"password", "secret", "token", "otp", "code", "key", "totp"})


class SecretInAuditDetails(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Actor:
    user_id: uuid.UUID | None
    name: str | None
    org_id: uuid.UUID | None

    @classmethod
    def of(cls, user: User) -> Actor:
        return cls(user.id, user.username, user.organisation_id)

    @classmethod
    def named(cls, name: str | None) -> Actor:
        """Someone we cannot (or must not) tie to an account, e.g. an unknown login name."""
        return cls(None, name, None)

    @classmethod
    def system(cls) -> Actor:
        return cls(None, "system", None)

    @classmethod
    def command_line(cls) -> Actor:
        return cls(None, "command-line", None)


def without_secret_keys(details: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """``details`` less any entry ``record`` would refuse, and the names left out.

    For details that come from the other side (an agent's report): a peer that sends a
    forbidden name loses that entry, not its connection or the rest of the event.
    """
    kept: dict[str, Any] = {}
    dropped: list[str] = []
    for name, value in details.items():
        if name.lower() in _SECRET_KEYS:
            dropped.append(name)
        elif isinstance(value, dict):
            inner, gone = without_secret_keys(value)
            kept[name] = inner
            dropped.extend(f"{name}.{g}" for g in gone)
        else:
            kept[name] = value
    return kept, dropped


def _check_details(details: dict[str, Any]) -> None:
    for key, value in details.items():
        if key.lower() in _SECRET_KEYS:
            raise SecretInAuditDetails(f"audit details must not carry {key!r}")
        if isinstance(value, dict):
            _check_details(value)


_BATCH_HEAD = "audit_batch_head"


@contextmanager
def appending(db: Session) -> Iterator[None]:
    """Many events in the caller's transaction at the cost of one: the chain's head is
    locked and read once, the events are hashed in order as before and written in one
    flush at the end (a node's agents logging in again; machines/connections.py).
    The chain is the same as with one ``record`` after another."""
    if _BATCH_HEAD in db.info:
        yield
        return
    db.info[_BATCH_HEAD] = None
    try:
        yield
        db.flush()
    finally:
        db.info.pop(_BATCH_HEAD, None)


def record(
    db: Session,
    action: str,
    outcome: Outcome,
    *,
    actor: Actor,
    reason: str | None = None,
    customer_org_id: uuid.UUID | None = None,
    vendor_org_id: uuid.UUID | None = None,
    machine_id: str | None = None,
    source_address: str | None = None,
    factor: str | None = None,
    details: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append one event to the chain. The caller commits.

    ``vendor_org_id``: for an event the vendor must read although none of its people is
    the actor (Support's end user, the system acting on a vendor's session)."""
    if details:
        _check_details(details)
    started = time.perf_counter()
    batching = _BATCH_HEAD in db.info
    head = _locked_head(db)
    event = AuditEvent(
        seq=head.seq + 1,
        id=uuid.uuid4(),
        occurred_at=utcnow(),
        action=action,
        outcome=str(outcome),
        reason=reason,
        actor_user_id=actor.user_id,
        actor_name=actor.name,
        actor_org_id=actor.org_id,
        customer_org_id=customer_org_id,
        vendor_org_id=vendor_org_id,
        machine_id=machine_id,
        source_address=source_address,
        factor=factor,
        details=canonical_details(details),
        prev_hash=head.hash,
    )
    event.hash = event_hash(head.hash, fields_of(event))
    head.seq = event.seq
    head.hash = event.hash
    db.add(event)
    if not batching:
        db.flush()
    metrics.audited(action, str(outcome), reason, time.perf_counter() - started)
    if db.info.get("audit_forwarding"):
        db.info.setdefault("audit_pending", []).append(event)
    return event


def _locked_head(db: Session) -> AuditHead:
    """The chain's head, locked for this transaction (read once in ``appending``).

    Locking the head row serialises appenders on PostgreSQL; on SQLite the transaction
    already holds the write lock (BEGIN IMMEDIATE, db/engine.py). The head row is created
    by the first migration; its absence is a broken database."""
    head: AuditHead | None = db.info.get(_BATCH_HEAD)
    if head is None:
        head = db.execute(select(AuditHead).where(AuditHead.id == 1).with_for_update()).scalar_one()
        if _BATCH_HEAD in db.info:
            db.info[_BATCH_HEAD] = head
    return head


@dataclass(frozen=True, slots=True)
class Entry:
    """One event for ``record_all``: what ``record`` takes, as a value."""

    action: str
    outcome: Outcome
    actor: Actor
    reason: str | None = None
    customer_org_id: uuid.UUID | None = None
    machine_id: str | None = None
    source_address: str | None = None
    details: dict[str, Any] | None = None


_events = cast(Table, AuditEvent.__table__)
_head = cast(Table, AuditHead.__table__)
# The head as plain columns, for a transaction that has not loaded it as an object.
_LOCK_HEAD = select(_head.c.seq, _head.c.hash).where(_head.c.id == 1).with_for_update()
_MOVE_HEAD = (
    update(_head).where(_head.c.id == 1).values(seq=bindparam("b_seq"), hash=bindparam("b_hash"))
)
_INSERT_EVENTS = insert(_events)
_EVENT_COLUMNS = tuple(column.name for column in _events.columns)
_COPY_EVENTS = f"COPY {_events.name} ({', '.join(_EVENT_COLUMNS)}) FROM STDIN"


def _insert(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """The events' rows, in one statement. On PostgreSQL through psycopg, a COPY: an
    executemany's work per row in SQLAlchemy and psycopg (binding, a pipelined statement
    each) was the largest part of a batch of agents' logins after the Ed25519 checks
    (docs/BENCHMARKS.md "The login's CPU"), a COPY's row is formatted in psycopg's C code.
    The rows are the values the chain hashed, timestamps timezone-aware (utcnow), as the
    column type would have bound them; an INSERT trigger fires for COPY too."""
    dialect = conn.dialect
    if dialect.name != "postgresql" or dialect.driver != "psycopg":
        conn.execute(_INSERT_EVENTS, rows)
        return
    try:
        driver = conn.connection.driver_connection
        with driver.cursor() as cursor, cursor.copy(_COPY_EVENTS) as copy:  # type: ignore[union-attr]
            for row in rows:
                copy.write_row([row[name] for name in _EVENT_COLUMNS])
    except dialect.loaded_dbapi.Error as exc:
        # As SQLAlchemy raises a statement's failure (IntegrityError, OperationalError...),
        # without the rows: logs.fault and the callers read those.
        raise DBAPIError.instance(
            _COPY_EVENTS,
            None,
            exc,
            dialect.loaded_dbapi.Error,
            hide_parameters=True,
            dialect=dialect,
        ) from exc


def _head_is_an_object(db: Session) -> bool:
    """The transaction holds the head as an ORM object (``record`` or ``appending`` ran
    in it): it is moved through that object, or the object would be left stale."""
    return _BATCH_HEAD in db.info or Session.identity_key(AuditHead, 1) in db.identity_map


def record_all(db: Session, entries: Sequence[Entry]) -> None:
    """Append ``entries`` in order: the chain ``record`` one after another would make,
    every entry its own event, for the cost of one. The head is locked and read once and
    the events are one statement of plain rows (``_insert``), without an ORM object each
    (a node's agents logging in again, machines/connections.py: the ORM's bookkeeping
    was most of a login's CPU). The caller commits."""
    if not entries:
        return
    if db.info.get("audit_forwarding") and db.in_nested_transaction():
        # Forwarding keeps, after a savepoint's rollback, only the events still in the
        # session (forward.py); these never are. No caller needs a savepoint here.
        raise RuntimeError("record_all does not run inside a savepoint")
    started = time.perf_counter()
    # Core statements on the session's connection: through the session they cost more
    # and do nothing more (no objects, no flush).
    conn = db.connection()
    # Without an ORM object for the head when none is loaded: the unit of work's flush
    # of one row cost as much as the rest of a batch of logins (docs/BENCHMARKS.md).
    head = _locked_head(db) if _head_is_an_object(db) else None
    seq, prev_hash = (head.seq, head.hash) if head is not None else conn.execute(_LOCK_HEAD).one()
    rows: list[dict[str, Any]] = []
    for entry in entries:
        if entry.details:
            _check_details(entry.details)
        seq += 1
        row: dict[str, Any] = {
            "seq": seq,
            "id": uuid.uuid4(),
            "occurred_at": utcnow(),
            "action": entry.action,
            "outcome": str(entry.outcome),
            "reason": entry.reason,
            "actor_user_id": entry.actor.user_id,
            "actor_name": entry.actor.name,
            "actor_org_id": entry.actor.org_id,
            "customer_org_id": entry.customer_org_id,
            "vendor_org_id": None,
            "machine_id": entry.machine_id,
            "source_address": entry.source_address,
            "factor": None,
            "details": canonical_details(entry.details),
            "prev_hash": prev_hash,
        }
        row["hash"] = prev_hash = event_hash(prev_hash, row)
        rows.append(row)
    _insert(conn, rows)
    if head is None:
        conn.execute(_MOVE_HEAD, {"b_seq": seq, "b_hash": prev_hash})
    else:
        head.seq, head.hash = seq, prev_hash
        if _BATCH_HEAD not in db.info:
            db.flush()
    elapsed = time.perf_counter() - started
    for entry in entries:
        metrics.audited(entry.action, str(entry.outcome), entry.reason, elapsed)
    if db.info.get("audit_forwarding"):
        db.info.setdefault("audit_pending", []).extend(AuditEvent(**row) for row in rows)
