"""API callers: a bearer token (the CLI), or a browser session cookie plus CSRF header."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request

from fjernhjelp.auth import logins
from fjernhjelp.auth.models import LoginSession, SessionKind, User
from fjernhjelp.server.deps import DB, State, session_cookie


def api_session(request: Request, state: State, db: DB) -> LoginSession:
    auth = request.headers.get("authorization", "")
    if auth:
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise HTTPException(
                401, "bearer token required", headers={"WWW-Authenticate": "Bearer"}
            )
        kind = SessionKind.API
    else:
        token = request.cookies.get(session_cookie(state)) or ""
        kind = SessionKind.BROWSER
    row = logins.find(db, token, policy=state.login.policy, now=state.now())
    if db.dirty or db.deleted:
        db.commit()
    if row is None or row.kind != kind:
        raise HTTPException(401, "not logged in", headers={"WWW-Authenticate": "Bearer"})
    request.state.user = row.user
    return row


ApiSession = Annotated[LoginSession, Depends(api_session)]


def api_user(row: ApiSession) -> User:
    return row.user


ApiUser = Annotated[User, Depends(api_user)]
