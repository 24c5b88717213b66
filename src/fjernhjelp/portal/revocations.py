"""Revocation events: "stop what is running", published once the change has committed.

Revoking or expiring a grant or an agreement, suspending, deactivating or re-enrolling a
user, suspending an organisation, or turning a policy off must cut live sessions at once,
not only refuse new ones. Portal services call ``announce(db, Revocation(...))`` inside
their transaction; ``install()`` hooks the session factory so the events reach the
``RevocationBus`` only after COMMIT (a rolled-back change announces nothing, the same
rule audit/forward.py follows for syslog). The tunnel subscribes and, for each live
session it holds, cuts it when ``event.affects(session)`` (or re-runs
portal.access.decide and cuts on a refusal).

The bus is in-process: with several server nodes, a bridge (Redis) must carry events to
the other nodes' subscribers. Subscribers run in the publishing thread and must be quick;
an asyncio consumer uses ``subscribe_queue``.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import event
from sqlalchemy.orm import Session, SessionTransaction, sessionmaker

_log = logging.getLogger(__name__)

PENDING = "portal_revocations_pending"


class RevocationKind(enum.StrEnum):
    GRANT_REVOKED = "grant_revoked"
    GRANT_EXPIRED = "grant_expired"
    GRANT_NARROWED = "grant_narrowed"  # fewer permissions, technicians or days than before
    AGREEMENT_REVOKED = "agreement_revoked"
    AGREEMENT_EXPIRED = "agreement_expired"
    USER_SUSPENDED = "user_suspended"
    USER_DEACTIVATED = "user_deactivated"  # by an admin, or for inactivity
    USER_RESTRICTED = "user_restricted"  # e.g. now outside the EU/EEA: re-run decide()
    USER_REENROLLED = "user_reenrolled"  # new password and factors: who held the old ones?
    ORGANISATION_SUSPENDED = "organisation_suspended"
    ACCESS_DISABLED = "access_disabled"  # policy: no Access for this customer (Support goes on)
    STOPPED_RECEIVING = "stopped_receiving"  # the customer no longer receives help
    STOPPED_GIVING = "stopped_giving"  # the vendor no longer gives help


@dataclass(frozen=True, slots=True)
class LiveSession:
    """What the tunnel knows about one running session, to match events against."""

    grant_id: uuid.UUID
    group_id: uuid.UUID
    customer_org_id: uuid.UUID
    vendor_org_id: uuid.UUID
    technician_id: uuid.UUID
    support: bool = False
    # Support: the agreement that allowed it (it has no grant to match by).
    agreement_id: uuid.UUID | None = None


_BY_GRANT = frozenset(
    {
        RevocationKind.GRANT_REVOKED,
        RevocationKind.GRANT_EXPIRED,
        RevocationKind.GRANT_NARROWED,
        RevocationKind.AGREEMENT_REVOKED,
        RevocationKind.AGREEMENT_EXPIRED,
    }
)


_BY_USER = frozenset(
    {
        RevocationKind.USER_SUSPENDED,
        RevocationKind.USER_DEACTIVATED,
        RevocationKind.USER_RESTRICTED,
        RevocationKind.USER_REENROLLED,
    }
)


@dataclass(frozen=True, slots=True)
class Revocation:
    """One event. Which ids are set depends on the kind:

    - grant and agreement kinds: ``grant_ids`` (every grant affected; for an agreement,
      all grants resting on it), ``group_ids``, ``customer_org_id``, ``vendor_org_id``;
      agreement kinds also ``agreement_ids``, which Support sessions are matched by;
    - user kinds: ``user_id`` and the user's organisation as ``vendor_org_id``;
    - organisation suspension: the organisation as ``customer_org_id`` if it receives
      help and as ``vendor_org_id`` if it gives help;
    - ``ACCESS_DISABLED`` and ``STOPPED_RECEIVING``: ``customer_org_id``;
      ``STOPPED_GIVING``: ``vendor_org_id``.
    """

    kind: RevocationKind
    occurred_at: datetime
    grant_ids: frozenset[uuid.UUID] = field(default_factory=frozenset)
    group_ids: frozenset[uuid.UUID] = field(default_factory=frozenset)
    customer_org_id: uuid.UUID | None = None
    vendor_org_id: uuid.UUID | None = None
    user_id: uuid.UUID | None = None
    agreement_ids: frozenset[uuid.UUID] = field(default_factory=frozenset)

    def affects(self, session: LiveSession) -> bool:
        kind = self.kind
        if kind in _BY_GRANT:
            if session.support:
                # A Support session rests on its agreement directly, not on a grant.
                return session.agreement_id is not None and (
                    session.agreement_id in self.agreement_ids
                )
            return session.grant_id in self.grant_ids
        if kind in _BY_USER:
            return session.technician_id == self.user_id
        if kind is RevocationKind.ORGANISATION_SUSPENDED:
            return session.customer_org_id == self.customer_org_id or (
                session.vendor_org_id == self.vendor_org_id
            )
        if kind is RevocationKind.ACCESS_DISABLED:
            return not session.support and session.customer_org_id == self.customer_org_id
        if kind is RevocationKind.STOPPED_RECEIVING:
            return session.customer_org_id == self.customer_org_id
        if kind is RevocationKind.STOPPED_GIVING:
            return session.vendor_org_id == self.vendor_org_id
        # A kind added later without a rule here cuts everything: fail closed.
        return True

    def describe(self) -> dict[str, object]:
        return {
            "kind": str(self.kind),
            "grants": sorted(str(g) for g in self.grant_ids),
            "groups": sorted(str(g) for g in self.group_ids),
            "customer_org": str(self.customer_org_id) if self.customer_org_id else None,
            "vendor_org": str(self.vendor_org_id) if self.vendor_org_id else None,
            "user": str(self.user_id) if self.user_id else None,
            "agreements": sorted(str(a) for a in self.agreement_ids),
        }


Subscriber = Callable[[Revocation], None]
Unsubscribe = Callable[[], None]


class RevocationBus:
    """Typed publish/subscribe within one process; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subscribers: list[Subscriber] = []

    def subscribe(self, subscriber: Subscriber) -> Unsubscribe:
        with self._lock:
            self._subscribers.append(subscriber)

        def unsubscribe() -> None:
            with self._lock:
                if subscriber in self._subscribers:
                    self._subscribers.remove(subscriber)

        return unsubscribe

    def subscribe_queue(
        self, loop: asyncio.AbstractEventLoop
    ) -> tuple[asyncio.Queue[Revocation], Unsubscribe]:
        """Events delivered into an asyncio queue on ``loop`` (from any thread)."""
        queue: asyncio.Queue[Revocation] = asyncio.Queue()

        def deliver(event: Revocation) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, event)

        return queue, self.subscribe(deliver)

    def publish(self, event: Revocation) -> None:
        with self._lock:
            subscribers = list(self._subscribers)
        for subscriber in subscribers:
            # One broken subscriber must not keep the others from cutting sessions.
            try:
                subscriber(event)
            except Exception:
                _log.exception("revocation subscriber failed on %s", event.kind)

    @property
    def subscriber_count(self) -> int:
        with self._lock:
            return len(self._subscribers)


def announce(db: Session, event: Revocation) -> None:
    """Queue ``event`` on the transaction; it is published if and when it commits."""
    if not db.in_transaction():
        # Tie the event to a transaction, so that a rollback (which only signals for
        # a transaction that exists) drops it instead of leaving it for a later commit.
        db.begin()
    db.info.setdefault(PENDING, []).append(event)


def pending(db: Session) -> list[Revocation]:
    """Events queued on ``db`` and not yet committed (for tests and diagnostics)."""
    return list(db.info.get(PENDING, []))


def install(factory: sessionmaker[Session], bus: RevocationBus) -> None:
    @event.listens_for(factory, "after_commit")
    def _after_commit(session: Session) -> None:
        if session.in_nested_transaction():
            # SQLAlchemy signals a released SAVEPOINT as a commit too (every service that
            # audits its refusals runs in one); the change is not committed until the
            # outermost transaction is.
            return
        for queued in session.info.pop(PENDING, []):
            bus.publish(queued)

    @event.listens_for(factory, "after_soft_rollback")
    def _after_rollback(session: Session, previous_transaction: SessionTransaction) -> None:
        # A savepoint rolling back leaves the outer transaction's events queued: losing
        # an event would leave a session running that must end.
        if not previous_transaction.nested:
            session.info.pop(PENDING, None)


def log_revocations(bus: RevocationBus) -> Unsubscribe:
    """Write each event to the process log (ids only), so operators can see them fire."""

    def write(event: Revocation) -> None:
        _log.info("revocation published: %s", event.describe())

    return bus.subscribe(write)
