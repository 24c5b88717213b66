"""The front door (the Support start page for anyone not signed in), the language
switch and the technician console."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from fjernhjelp.i18n import LANGUAGES
from fjernhjelp.portal import grants
from fjernhjelp.portal.errors import NotAllowed
from fjernhjelp.remote import support
from fjernhjelp.server.deps import DB, BrowserSession, T, require
from fjernhjelp.server.pages.auth import safe_next
from fjernhjelp.server.pages.render import render
from fjernhjelp.server.pages.support import start_page
from fjernhjelp.server.portal_caller import PageCaller

router = APIRouter()


@router.get("/", response_class=HTMLResponse)
def home(request: Request, t: T, session: BrowserSession) -> Response:
    if session is None:
        # The public start page: the end user enters the code they were given; staff
        # find a discreet link to the login there.
        return start_page(request, t)
    user = session.user
    if user.is_technician and not (user.is_admin or user.is_operator):
        return RedirectResponse("/console", status_code=303)
    return RedirectResponse("/portal", status_code=303)


@router.get("/lang/{code}")
def set_language(code: str, next: str = "/") -> Response:
    response = RedirectResponse(safe_next(next), status_code=303)
    if code in LANGUAGES:
        response.set_cookie("fjh_lang", code, max_age=365 * 86400, path="/", samesite="lax")
    return response


@router.get("/console", response_class=HTMLResponse)
def console(request: Request, t: T, db: DB, caller: PageCaller) -> Response:
    require(caller.user, technician=True)
    # The machine list itself comes from the API; the page only says which "empty" is
    # true: no grant at all, or grants whose groups have no machine yet.
    try:
        usable = grants.received(db, caller)
    except NotAllowed:  # not a refusal of the page: the console then says "no grants"
        usable = []
    mine = support.list_own(db, caller, live_only=True)
    return render(
        request,
        t,
        "console.html",
        machines=[],
        has_grants=bool(usable),
        time_zone=request.app.state.fjh.settings.time_zone,
        support_sessions=support.summaries(db, mine, caller.now),
    )
