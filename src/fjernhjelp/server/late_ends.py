"""Session ends the database could not take when they happened.

A relay session that ends while the database is away cannot write ``session.ended``:
without this the row would stay open in the records until the node restarted (and
ended its orphans with a reason that is not what happened). So the end is kept in this
process, with its reason, time and byte counts, and the housekeeping loop records it
once the database is back: the row gets the time it really ended, the audit event says
it was recorded late. A session something else ended meanwhile (another node's sweep of
a lost node, a restart) stays as that one recorded it.

Bounded: at most :data:`LIMIT` ends wait (a node holds far fewer relay sessions); past
that the oldest is dropped, and left to the restart's orphan sweep as before.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from fjernhjelp.logs import fault
from fjernhjelp.remote import sessions as remote_sessions
from fjernhjelp.server.unavailable import classify

_log = logging.getLogger(__name__)

LIMIT = 100_000


@dataclass(frozen=True)
class LateEnd:
    session_id: uuid.UUID
    ended_at: datetime
    reason: str
    bytes_from_technician: int = 0
    bytes_from_agent: int = 0

    def record(self, db: Session, *, late: bool) -> None:
        """Record this end as the relay saw it (uncommitted); ``late`` when the database
        was away at the time."""
        remote_sessions.end(
            db,
            self.session_id,
            now=self.ended_at,
            reason=self.reason,
            bytes_from_technician=self.bytes_from_technician,
            bytes_from_agent=self.bytes_from_agent,
            late=late,
        )


class LateEnds:
    """Thread-safe: ends are kept from worker threads and recorded from another."""

    def __init__(self, limit: int = LIMIT) -> None:
        self.limit = limit
        self._waiting: OrderedDict[uuid.UUID, LateEnd] = OrderedDict()
        self._lock = threading.Lock()

    def keep(self, end: LateEnd) -> None:
        with self._lock:
            self._waiting.setdefault(end.session_id, end)
            while len(self._waiting) > self.limit:
                dropped, _ = self._waiting.popitem(last=False)
                _log.warning("session %s: its late end was dropped (too many waiting)", dropped)

    def __len__(self) -> int:
        with self._lock:
            return len(self._waiting)

    def record(self, db: Session) -> int:
        """Record what waits, one transaction each, oldest first; returns how many were
        written. The database still away: what is left waits for the next round (and
        the error is raised for the housekeeping loop to log)."""
        with self._lock:
            waiting = list(self._waiting.values())
        written = 0
        for end in waiting:
            try:
                end.record(db, late=True)
                db.commit()
            except Exception as exc:
                db.rollback()
                if classify(exc) is not None:
                    raise
                # A fault of the code would fail the same way every round: give it up.
                _log.error("session %s: late end not recorded: %s", end.session_id, fault(exc))
            else:
                written += 1
            with self._lock:
                self._waiting.pop(end.session_id, None)
        return written
