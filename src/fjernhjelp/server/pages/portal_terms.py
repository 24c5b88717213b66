"""Terms of use as an organisation's admin sees them: read, and accept per role."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from fjernhjelp.portal import terms
from fjernhjelp.portal.errors import PortalError
from fjernhjelp.server.deps import DB, T
from fjernhjelp.server.pages.portal_view import done, notice_text, settled
from fjernhjelp.server.pages.render import render
from fjernhjelp.server.portal_caller import PageCaller

router = APIRouter(prefix="/portal/terms")


def _page(
    request: Request, db: DB, t: T, caller: PageCaller, status_code: int = 200, **extra: object
) -> Response:
    caller.require_admin()
    org = caller.org
    statuses = [terms.status(db, org.id, a) for a in terms.audiences_of(org)]
    return render(
        request, t, "portal_terms.html", status_code=status_code, statuses=statuses, **extra
    )


@router.get("", response_class=HTMLResponse)
def terms_page(
    request: Request, db: DB, t: T, caller: PageCaller, notice: str | None = None
) -> Response:
    return _page(request, db, t, caller, notice=notice_text(t, notice))


@router.post("/{audience}/accept", response_class=HTMLResponse)
def accept(request: Request, db: DB, t: T, caller: PageCaller, audience: str) -> Response:
    result = settled(db, lambda: terms.accept(db, caller, audience))
    if isinstance(result, PortalError):
        return _page(request, db, t, caller, result.status, error=t(result.reason))
    return done("/portal/terms", "terms_accepted")
