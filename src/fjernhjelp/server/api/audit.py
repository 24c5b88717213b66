"""Reading the audit log: the operator sees all, an organisation admin its own."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Query, Response
from pydantic import BaseModel

from fjernhjelp.audit import checkpoint_store
from fjernhjelp.audit.query import event_as_dict, parse_filter, visible_events
from fjernhjelp.server.api.deps import ApiUser
from fjernhjelp.server.deps import DB, Client, State

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


@router.get(
    "/checkpoints",
    response_class=Response,
    responses={200: {"content": {"application/json": {}}}},
)
def download_checkpoints(db: DB, user: ApiUser, state: State, client: Client) -> Response:
    """The signed checkpoints of the audit chain (docs/audit-checkpoints.md), one just made
    among them; for `fjernhjelp audit verify --checkpoint FILE`. Every administrator gets
    the same file: it reveals the number of events and the head hash, nothing else."""
    data = checkpoint_store.download(
        db, user, state.keys.signing, state.now(), client.source_address
    )
    return checkpoint_response(data)


def checkpoint_response(data: bytes) -> Response:
    return Response(
        data,
        media_type="application/json",
        headers={"Content-Disposition": 'attachment; filename="audit-checkpoints.json"'},
    )
