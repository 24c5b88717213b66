"""Reading the audit log: the operator sees all, an organisation admin its own."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel

from fjernhjelp.audit.query import event_as_dict, parse_filter, visible_events
from fjernhjelp.server.api.deps import ApiUser
from fjernhjelp.server.deps import DB

router = APIRouter(prefix="/audit", tags=["audit"])


class AuditPage(BaseModel):
    events: list[dict[str, Any]]
    next_before: int | None


@router.get("/events", response_model=AuditPage)
def list_events(
    db: DB,
    user: ApiUser,
    since: str | None = Query(None, description="YYYY-MM-DD, inclusive"),
    until: str | None = Query(None, description="YYYY-MM-DD, inclusive"),
    actor: str | None = None,
    action: str | None = Query(None, description="prefix, e.g. auth.login"),
    outcome: str | None = None,
    before: int | None = Query(None, description="only events older than this seq"),
    limit: int = Query(100, ge=1, le=1000),
) -> AuditPage:
    if not (user.is_operator or user.is_admin):
        raise HTTPException(403, "only administrators read the audit log")
    scope = None if user.is_operator else user.organisation_id
    flt = parse_filter(since, until, actor, action, outcome)
    rows = (
        db.execute(visible_events(scope, flt, limit=limit + 1, before_seq=before)).scalars().all()
    )
    events = [event_as_dict(e) for e in rows[:limit]]
    return AuditPage(events=events, next_before=rows[limit - 1].seq if len(rows) > limit else None)
