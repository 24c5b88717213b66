"""Exporting the audit log as JSON Lines, one event per line, oldest first."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from fjernhjelp.audit.models import AuditEvent
from fjernhjelp.audit.query import event_as_dict


def export_lines(
    db: Session, organisation_id: uuid.UUID | None = None, batch: int = 2000
) -> Iterator[str]:
    last_seq = 0
    while True:
        stmt = select(AuditEvent).where(AuditEvent.seq > last_seq)
        if organisation_id is not None:
            stmt = stmt.where(
                or_(
                    AuditEvent.actor_org_id == organisation_id,
                    AuditEvent.customer_org_id == organisation_id,
                )
            )
        rows = db.execute(stmt.order_by(AuditEvent.seq).limit(batch)).scalars().all()
        if not rows:
            return
        for event in rows:
            yield json.dumps(event_as_dict(event), ensure_ascii=False, separators=(",", ":"))
            last_seq = event.seq
        db.expunge_all()
