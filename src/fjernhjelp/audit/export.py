"""Exporting the audit log as JSON Lines, one event per line, oldest first."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

from sqlalchemy import select
from sqlalchemy.orm import Session

from fjernhjelp.audit.log import Outcome, record
from fjernhjelp.audit.models import AuditEvent
from fjernhjelp.audit.query import event_as_dict, visible_to
from fjernhjelp.caller import Caller


def exported(db: Session, caller: Caller) -> uuid.UUID | None:
    """Audit that ``caller`` (an admin or the operator, already checked) is exporting the
    log, and return the scope they may export: their own organisation's events, or every
    event (None) for the operator."""
    scope = None if caller.is_operator else caller.user.organisation_id
    record(
        db,
        "audit.exported",
        Outcome.SUCCESS,
        actor=caller.actor,
        customer_org_id=scope,
        source_address=caller.source_address,
        details={"scope": "all" if scope is None else str(scope)},
    )
    return scope


def export_lines(
    db: Session, organisation_id: uuid.UUID | None = None, batch: int = 2000
) -> Iterator[str]:
    last_seq = 0
    while True:
        stmt = select(AuditEvent).where(AuditEvent.seq > last_seq)
        if organisation_id is not None:
            stmt = stmt.where(visible_to(organisation_id))
        rows = db.execute(stmt.order_by(AuditEvent.seq).limit(batch)).scalars().all()
        if not rows:
            return
        for event in rows:
            yield json.dumps(event_as_dict(event), ensure_ascii=False, separators=(",", ":"))
            last_seq = event.seq
        db.expunge_all()
