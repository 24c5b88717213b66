"""The portal's front page (notices, terms, where to go next) and the audit log view."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse

from fjernhjelp.audit import checkpoint_store
from fjernhjelp.audit.export import export_lines, exported
from fjernhjelp.audit.query import event_as_dict, parse_filter, visible_events
from fjernhjelp.portal import notifications, terms
from fjernhjelp.server.api.audit import checkpoint_response
from fjernhjelp.server.deps import DB, Client, PageUser, State, T, require
from fjernhjelp.server.pages.portal_view import notice_text, settled
from fjernhjelp.server.pages.render import render
from fjernhjelp.server.portal_caller import PageCaller

router = APIRouter(prefix="/portal")

PAGE_SIZE = 100


@router.get("", response_class=HTMLResponse)
def portal_home(
    request: Request, db: DB, t: T, caller: PageCaller, notice: str | None = None
) -> Response:
    require(caller.user, admin=True)
    org = caller.org
    notes = [
        (n, t(f"notification.{n.kind}", **notifications.params_of(n)))
        for n in notifications.open_for(db, caller)
    ]
    return render(
        request,
        t,
        "portal.html",
        organisation=org,
        notes=notes,
        terms_missing=[
            a for a in terms.audiences_of(org) if not terms.accepted_current(db, org.id, a)
        ],
        notice=notice_text(t, notice),
    )


@router.post("/notifications/{notification_id}/dismiss")
def dismiss_notification(notification_id: uuid.UUID, db: DB, caller: PageCaller) -> Response:
    settled(
        db,
        lambda: notifications.dismiss(db, caller, notification_id),
    )
    return RedirectResponse("/portal", status_code=303)


@router.get("/audit", response_class=HTMLResponse)
def audit_view(
    request: Request,
    db: DB,
    t: T,
    user: PageUser,
    since: str | None = None,
    until: str | None = None,
    actor: str | None = None,
    action: str | None = None,
    outcome: str | None = None,
    before: int | None = None,
) -> Response:
    require(user, admin=True)
    scope = None if user.is_operator else user.organisation_id
    zone = ZoneInfo(request.app.state.fjh.settings.time_zone)
    flt = parse_filter(since, until, actor, action, outcome, zone=zone)
    rows = (
        db.execute(visible_events(scope, flt, limit=PAGE_SIZE + 1, before_seq=before))
        .scalars()
        .all()
    )
    events = [event_as_dict(e) for e in rows[:PAGE_SIZE]]
    older = events[-1]["seq"] if len(rows) > PAGE_SIZE else None
    return render(
        request,
        t,
        "audit.html",
        events=events,
        older=older,
        filters={
            "since": since or "",
            "until": until or "",
            "actor": actor or "",
            "action": action or "",
            "outcome": outcome or "",
        },
        scope_all=scope is None,
    )


@router.get("/audit/export.jsonl")
def audit_export(state: State, db: DB, caller: PageCaller) -> Response:
    require(caller.user, admin=True)
    scope = exported(db, caller)
    db.commit()

    def lines():  # type: ignore[no-untyped-def]
        with state.readers() as db:
            for line in export_lines(db, scope):
                yield line + "\n"

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return StreamingResponse(
        lines(),
        media_type="application/x-ndjson",
        headers={"Content-Disposition": f'attachment; filename="audit-{stamp}.jsonl"'},
    )


@router.get("/audit/checkpoints.json")
def audit_checkpoints(state: State, db: DB, client: Client, user: PageUser) -> Response:
    data = checkpoint_store.download(
        db, user, state.keys.signing, state.now(), client.source_address
    )
    return checkpoint_response(data)
