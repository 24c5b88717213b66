"""FastAPI dependencies: the database session, the caller, their language, CSRF."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session
from starlette.requests import HTTPConnection

from fjernhjelp.auth import logins
from fjernhjelp.auth.logins import ClientInfo
from fjernhjelp.auth.models import LoginSession, SessionKind, User
from fjernhjelp.i18n import Translator, negotiate
from fjernhjelp.refusals import Refusal
from fjernhjelp.server.security import client_address, cookie_name, csrf_exemption, csrf_valid
from fjernhjelp.server.state import AppState

_log = logging.getLogger(__name__)

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def get_state(request: Request) -> AppState:
    return request.app.state.fjh


def get_db(request: Request) -> Iterator[Session]:
    db = get_state(request).db_sessions()
    try:
        yield db
    except Refusal as exc:
        # A refusal its service recorded leaves only its audit event (and counters such
        # as a login's throttle) in the transaction: keep them; anything else rolls back.
        if exc.recorded:
            db.commit()
        raise
    finally:
        try:
            db.close()
        except DBAPIError:
            # The database went away after the answer was sent (or while a refusal of
            # its absence was): closing rolls back on a dead connection, which the pool
            # then discards. Nothing of this request is left to undo, and the answer has
            # gone out; raising here would only turn into a server error after it.
            _log.warning("a database connection was lost while closing a request's session")


State = Annotated[AppState, Depends(get_state)]
DB = Annotated[Session, Depends(get_db)]


def get_client(request: Request) -> ClientInfo:
    state = get_state(request)
    peer = request.client.host if request.client else None
    return ClientInfo(
        source_address=client_address(peer, request.headers.get("x-forwarded-for"), state.settings),
        user_agent=request.headers.get("user-agent"),
    )


Client = Annotated[ClientInfo, Depends(get_client)]


class LoginRequired(Exception):
    """Raised by page dependencies; the app turns it into a redirect to /login."""


class Forbidden(Exception):
    """The caller is logged in but may not do this; the app answers 403."""


class CsrfRefused(Exception):
    """A state-changing request without a valid CSRF token; refused and audited."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def session_cookie(state: AppState) -> str:
    return cookie_name(state.settings, "fjh_session")


def browser_session(request: Request, state: State, db: DB) -> LoginSession | None:
    token = request.cookies.get(session_cookie(state))
    row = logins.find(db, token, policy=state.login.policy, now=state.now())
    if row is not None and row.kind != SessionKind.BROWSER:
        return None
    if db.dirty or db.deleted:
        db.commit()
    request.state.user = row.user if row else None
    return row


BrowserSession = Annotated[LoginSession | None, Depends(browser_session)]


def page_user(row: BrowserSession) -> User:
    if row is None:
        raise LoginRequired
    return row.user


PageUser = Annotated[User, Depends(page_user)]


def translator(request: Request, state: State) -> Translator:
    user: User | None = getattr(request.state, "user", None)
    lang = negotiate(
        request.cookies.get("fjh_lang"),
        user.language if user else None,
        request.headers.get("accept-language"),
        state.settings.default_language,
    )
    return Translator(lang)


T = Annotated[Translator, Depends(translator)]


async def csrf_protect(connection: HTTPConnection) -> None:
    """Refuse a state-changing request without a valid CSRF token.

    create_app installs this for every route, so it fails closed: a new route is checked
    unless its endpoint is marked ``security.csrf_exempt``. (Routers that still name it
    cost nothing: FastAPI runs one dependency once per request.) WebSockets pass: the
    relay and the agent link read no cookie, only tokens and signatures sent in-band.
    """
    if not isinstance(connection, Request) or connection.method not in UNSAFE_METHODS:
        return
    request = connection
    if csrf_exemption(request.scope.get("endpoint")) is not None:
        return
    if request.url.path.startswith("/api/") and request.headers.get("authorization"):
        # The API then authenticates by the bearer token alone (api/deps.py), which a
        # browser never attaches on its own: a cross-site page would need a CORS
        # preflight, and this server grants none.
        return
    state = get_state(request)
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        raise CsrfRefused("cross_site_request")
    token = request.headers.get("x-csrf-token")
    if token is None:
        content_type = request.headers.get("content-type", "")
        if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            form = await request.form()
            value = form.get("csrf_token")
            token = value if isinstance(value, str) else None
    if not csrf_valid(state.keys.cookie, request.scope["state"].get("csrf_seed"), token):
        raise CsrfRefused("csrf_token_missing" if not token else "csrf_token_invalid")


def require(
    user: User, *, operator: bool = False, admin: bool = False, technician: bool = False
) -> None:
    allowed = (
        (operator and user.is_operator)
        or (admin and (user.is_admin or user.is_operator))
        or (technician and user.is_technician)
    )
    if not allowed:
        raise Forbidden
