"""Reading audit events: who may see which, with filters."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo

from sqlalchemy import ColumnElement, Select, or_, select

from fjernhjelp.audit.models import AuditEvent


@dataclass(frozen=True, slots=True)
class AuditFilter:
    since: datetime | None = None
    until: datetime | None = None
    actor: str | None = None
    action: str | None = None  # a prefix: "auth." matches every login event
    outcome: str | None = None


def visible_to(organisation_id: uuid.UUID) -> ColumnElement[bool]:
    """The events an organisation reads: its own people's, those about it as a customer,
    and those about it as the vendor although none of its people acted (a Support end
    user's code attempt, a code expiring: ``vendor_org_id``)."""
    return or_(
        AuditEvent.actor_org_id == organisation_id,
        AuditEvent.customer_org_id == organisation_id,
        AuditEvent.vendor_org_id == organisation_id,
    )


def visible_events(
    organisation_id: uuid.UUID | None,
    flt: AuditFilter,
    *,
    limit: int = 200,
    before_seq: int | None = None,
) -> Select[AuditEvent]:
    """Events newest first. ``organisation_id`` None means everything (the operator)."""
    stmt = select(AuditEvent)
    if organisation_id is not None:
        stmt = stmt.where(visible_to(organisation_id))
    if flt.since:
        stmt = stmt.where(AuditEvent.occurred_at >= flt.since)
    if flt.until:
        stmt = stmt.where(AuditEvent.occurred_at < flt.until)
    if flt.actor:
        stmt = stmt.where(AuditEvent.actor_name == flt.actor)
    if flt.action:
        prefix = flt.action.replace("\\", "").replace("%", "").replace("_", "\\_")
        stmt = stmt.where(AuditEvent.action.like(prefix + "%", escape="\\"))
    if flt.outcome:
        stmt = stmt.where(AuditEvent.outcome == flt.outcome)
    if before_seq is not None:
        stmt = stmt.where(AuditEvent.seq < before_seq)
    return stmt.order_by(AuditEvent.seq.desc()).limit(limit)


def event_as_dict(event: AuditEvent) -> dict[str, object]:
    import json

    return {
        "seq": event.seq,
        "id": str(event.id),
        "occurred_at": event.occurred_at.isoformat(timespec="microseconds"),
        "action": event.action,
        "outcome": event.outcome,
        "reason": event.reason,
        "actor_user_id": str(event.actor_user_id) if event.actor_user_id else None,
        "actor_name": event.actor_name,
        "actor_org_id": str(event.actor_org_id) if event.actor_org_id else None,
        "customer_org_id": str(event.customer_org_id) if event.customer_org_id else None,
        "vendor_org_id": str(event.vendor_org_id) if event.vendor_org_id else None,
        "machine_id": event.machine_id,
        "source_address": event.source_address,
        "factor": event.factor,
        "details": json.loads(event.details),
        "prev_hash": event.prev_hash,
        "hash": event.hash,
    }


def _parse_day(value: str | None, end: bool = False, zone: tzinfo = UTC) -> datetime | None:
    """The start (or with ``end``, the end) of a calendar day in ``zone``, as UTC."""
    if not value:
        return None
    try:
        day = datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=zone)
    except ValueError:
        return None
    if end:
        day += timedelta(days=1)  # wall-clock arithmetic: the next local midnight
    return day.astimezone(UTC)


def parse_filter(
    since: str | None,
    until: str | None,
    actor: str | None,
    action: str | None,
    outcome: str | None,
    zone: tzinfo = UTC,
) -> AuditFilter:
    """``zone``: the zone the days are meant in (the pages show the configured zone's
    time, so their day filters are that zone's days; the API's are UTC days)."""
    return AuditFilter(
        since=_parse_day(since, zone=zone),
        until=_parse_day(until, end=True, zone=zone),
        actor=(actor or "").strip() or None,
        action=(action or "").strip() or None,
        outcome=outcome if outcome in ("success", "failure", "denied", "info") else None,
    )
