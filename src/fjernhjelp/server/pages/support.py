"""Support pages: the end user's side (the start page's code form, the link /s/{code},
the one-time client's download), the technician's (new Support session, its code and
state, cancel), and the organisation's list of past Support sessions.

Views only: remote/support.py decides, acts and audits.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse

from fjernhjelp.control.package import b64e
from fjernhjelp.i18n import Translator, catalogue
from fjernhjelp.portal.support import support_customers
from fjernhjelp.remote import history, support, support_codes, support_download
from fjernhjelp.remote.models import RemoteSession
from fjernhjelp.remote.support import CodeInvalid, CodeThrottled
from fjernhjelp.server.deps import DB, Client, State, T, require
from fjernhjelp.server.pages.console_session import support_session_config, with_style_nonce
from fjernhjelp.server.pages.render import render
from fjernhjelp.server.portal_caller import PageCaller
from fjernhjelp.server.security import cookie_name, new_style_nonce
from fjernhjelp.server.state import AppState

router = APIRouter()


def config(state: AppState) -> support.SupportConfig:
    return support.support_config(state.settings, state.keys.at_rest)


def start_page(
    request: Request,
    t: Translator,
    *,
    code: str = "",
    error: str | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    """The public start page: the code form (also what ``/`` shows anyone not signed in)."""
    return render(
        request,
        t,
        "support_start.html",
        status_code=status_code,
        code=code,
        # Not ``error``: base.html would show that one a second time, outside the form.
        code_error=error,
        digits=config(request.app.state.fjh).digits,
    )


@router.get("/s/{code}", response_class=HTMLResponse)
def from_link(request: Request, t: T, code: str) -> Response:
    """The link the technician sent: the form, filled in. Opening the link does not
    spend the code: link previews in mail and chat programs fetch links on their own,
    and would use it up before the person does. Pressing Continue spends it."""
    shown = support_codes.normalise(code)
    return start_page(request, t, code=support_codes.grouped(shown) if shown else "")


@router.post("/s", response_class=HTMLResponse)
def join(
    request: Request,
    state: State,
    db: DB,
    client: Client,
    t: T,
    code: Annotated[str, Form(max_length=100)],
) -> Response:
    try:
        joined = support.join(db, config(state), code, client.source_address, state.now())
    except (CodeInvalid, CodeThrottled) as exc:
        # The form again with one sentence; the events and counters stay (recorded).
        db.commit()
        response = start_page(
            request, t, error=t(exc.sentence_key, **exc.params), status_code=exc.status
        )
        if exc.retry_after is not None:
            response.headers["Retry-After"] = str(exc.retry_after)
        return response
    db.commit()
    build = client_build(state)
    response = render(
        request,
        t,
        "support_joined.html",
        joined=joined,
        client_available=build.available,
        fingerprint=build.fingerprint,
        share_config=share_config(t, state, joined),
    )
    # The page carries the end-user token for sharing from the browser: never cached.
    response.headers["Cache-Control"] = "no-store"
    # The end-user token rides in a cookie, not in the download link: a link with the
    # token in it would be a bearer URL that ends up in browser history, access logs,
    # proxies and whatever the end user pastes it into, and anyone holding it could fetch
    # the client as this session. The cookie is HttpOnly, SameSite=Strict, one per
    # session, and dies with the code's lifetime; without it /s/{id}/client answers 404.
    response.set_cookie(
        cookie_name(state.settings, support_download.client_cookie(joined.session_id)),
        joined.client_token,
        max_age=int(config(state).lifetime.total_seconds()),
        path="/",
        httponly=True,
        samesite="strict",
        secure=state.settings.secure_cookies,
    )
    return response


SHARE_TEXT_PREFIXES = ("support.share.", "support.sas.")


def share_config(t: Translator, state: AppState, joined: support.Joined) -> dict[str, object]:
    """What static/js/share.js needs to be the end user's end of the tunnel: the session,
    the end-user token (the same the cookie holds, for the control link's login), the
    server key it checks the challenge and the ticket against, and its texts."""
    return {
        "session_id": str(joined.session_id),
        "token": joined.client_token,
        "server_key": b64e(state.keys.signing.public_key().public_bytes_raw()),
        "control_url": "/agent/control",
        "texts": {key: t(key) for key in catalogue() if key.startswith(SHARE_TEXT_PREFIXES)},
    }


def client_build(state: AppState) -> support_download.ClientBuild:
    return support_download.client_build(state.settings, state.keys.signing)


@router.get("/s/{session_id}/client")
def download_client(
    request: Request, state: State, db: DB, client: Client, session_id: uuid.UUID
) -> Response:
    """The one-time client, stamped for this server, for the end user who joined this
    session in this browser (the cookie the join set). Refusals are recorded by the
    service and answered by server/problems.py."""
    token = request.cookies.get(
        cookie_name(state.settings, support_download.client_cookie(session_id))
    )
    sent = support_download.client_download(
        db,
        config(state),
        client_build(state),
        session_id,
        token,
        client.source_address,
        state.now(),
    )
    db.commit()
    # Opened now, so that a newer build replacing the cached file mid-download cannot
    # change what this response sends.
    stamped = sent.stamped.open("rb")
    size = os.fstat(stamped.fileno()).st_size + len(sent.handover)

    def body() -> Iterator[bytes]:
        with stamped:
            while chunk := stamped.read(1 << 20):
                yield chunk
        yield sent.handover

    return StreamingResponse(
        body(),
        media_type="application/octet-stream",
        headers={
            "Content-Disposition": (f'attachment; filename="{support_download.CLIENT_FILE_NAME}"'),
            "Content-Length": str(size),
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
        },
    )


# ---- the technician's console -----------------------------------------------------------


@router.get("/console/support/new", response_class=HTMLResponse)
def new_form(request: Request, t: T, db: DB, caller: PageCaller) -> Response:
    require(caller.user, technician=True)
    customers = support_customers(db, caller.user, caller.now)
    return render(request, t, "console_support_new.html", customers=customers)


@router.post("/console/support", response_class=HTMLResponse)
def create(
    request: Request,
    state: State,
    t: T,
    db: DB,
    caller: PageCaller,
    customer_org_id: Annotated[uuid.UUID, Form()],
) -> Response:
    require(caller.user, technician=True)
    # A refusal is recorded by the service and answered by server/problems.py.
    created = support.create(db, caller, config(state), customer_org_id)
    db.commit()
    # The code is shown here, once: the server keeps only its MAC.
    return _session_page(request, t, db, caller, created.session, created)


@router.get("/console/support/{support_id}", response_class=HTMLResponse)
def show(request: Request, t: T, db: DB, caller: PageCaller, support_id: uuid.UUID) -> Response:
    require(caller.user, technician=True)
    row = support.own(db, caller, support_id)
    return _session_page(request, t, db, caller, row, None)


def _session_page(
    request: Request,
    t: Translator,
    db: DB,
    caller: PageCaller,
    row: RemoteSession,
    created: support.CreatedSupport | None,
) -> Response:
    """The Support session's page: the code (once), its state while it waits, then the
    session itself (static/js/console_support.js opens the tunnel in the page)."""
    state = support.state_of(row, caller.now)
    nonce = new_style_nonce()
    response = render(
        request,
        t,
        "console_support.html",
        row=row,
        created=created,
        state=state,
        customer=support.customer_name(db, row),
        # Only a session that has not been opened yet can be: one tunnel per session.
        live=state in (support.State.WAITING, support.State.JOINED),
        config=support_session_config(t, str(row.id), request.app.state.fjh.settings.time_zone),
        style_nonce=nonce,
    )
    return with_style_nonce(response, nonce)


@router.post("/console/support/{support_id}/cancel")
def cancel(db: DB, caller: PageCaller, support_id: uuid.UUID) -> Response:
    require(caller.user, technician=True)
    support.cancel(db, caller, support_id)
    db.commit()
    return RedirectResponse(f"/console/support/{support_id}", status_code=303)


# ---- history: the organisation's Support sessions ---------------------------------------


@router.get("/portal/support-sessions", response_class=HTMLResponse)
def history_page(
    request: Request,
    t: T,
    db: DB,
    caller: PageCaller,
    cursor: Annotated[str | None, Query(max_length=100)] = None,
) -> Response:
    """Support sessions have no machine page: this list is where a customer's admins read
    every vendor's for their organisation, and a vendor's technicians their own."""
    user = caller.user
    if not (user.is_admin or user.is_operator or user.is_technician):
        raise HTTPException(404)
    try:
        after = history.Cursor.decode(cursor) if cursor is not None else None
    except ValueError as exc:
        raise HTTPException(404) from exc
    page = history.support_sessions_of(db, caller, limit=PAGE_ROWS, after=after)
    return render(
        request,
        t,
        "portal_support_sessions.html",
        sessions=page.sessions,
        as_customer=page.as_customer,
        older="?" + urlencode({"cursor": page.next.encode()}) if page.next else None,
        first_page=cursor is None,
    )


PAGE_ROWS = 50
