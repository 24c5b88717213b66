"""Support sessions that ran out on the server's clock, not only on the client's: a code
nobody entered in time (remote.support.expire_codes), and a session the end user joined
whose tunnel the technician never asked for within a code's lifetime of the join. The
server's housekeeping sweep ends both and then tells each joined client over its control
link (a cut), so it exits at once instead of after its own wait."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from fjernhjelp.audit.log import Outcome, record
from fjernhjelp.caller import Caller
from fjernhjelp.remote import sessions as remote_sessions
from fjernhjelp.remote.models import RemoteSession, SessionKind, SessionStatus
from fjernhjelp.remote.support import expire_codes

# The end reason, and the cut's reason the client is told.
JOINED_EXPIRED = "joined_expired"


def expire_joined(db: Session, now: datetime, lifetime: timedelta) -> list[uuid.UUID]:
    """End the joined Support sessions whose tunnel was not asked for within
    ``lifetime`` of the join: ``session.ended`` (reason ``joined_expired``) and
    ``support.session_expired`` for the vendor's and the customer's logs. Returns their
    ids, for the caller to cut the clients once this has committed. Rows are claimed
    with SKIP LOCKED: several nodes may sweep, and a tunnel asked for meanwhile wins."""
    due = list(
        db.execute(
            select(RemoteSession)
            .where(
                RemoteSession.kind == SessionKind.SUPPORT,
                RemoteSession.status == SessionStatus.JOINED,
                RemoteSession.code_used_at <= now - lifetime,
            )
            .with_for_update(skip_locked=True, of=RemoteSession)
        )
        .unique()
        .scalars()
    )
    for row in due:
        joined_at = row.code_used_at
        remote_sessions.end(db, row.id, now=now, reason=JOINED_EXPIRED)
        record(
            db,
            "support.session_expired",
            Outcome.INFO,
            actor=Caller.system(now).actor,
            reason=JOINED_EXPIRED,
            customer_org_id=row.customer_org_id,
            vendor_org_id=row.vendor_org_id,
            details={
                "session": str(row.id),
                "technician": row.technician.username,
                "joined_at": joined_at.isoformat() if joined_at else None,
                "client_started": row.client_public_key is not None,
            },
        )
    return [row.id for row in due]


def sweep(db: Session, now: datetime, lifetime: timedelta) -> list[uuid.UUID]:
    """Both kinds of expiry in one pass; the ids of the joined sessions ended (their
    clients to be told). The caller commits."""
    expire_codes(db, now)
    return expire_joined(db, now, lifetime)
