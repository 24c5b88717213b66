"""Logging in over the API (the CLI): password, then second factor, then a bearer token."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, Field

from fjernhjelp.auth import login
from fjernhjelp.auth.models import SessionKind
from fjernhjelp.server.api.deps import ApiSession
from fjernhjelp.server.deps import DB, Client, State
from fjernhjelp.server.security import csrf_exempt

router = APIRouter(prefix="/auth", tags=["auth"])


class PasswordStep(BaseModel):
    username: str = Field(max_length=200)
    password: str = Field(max_length=1024)


class PendingLogin(BaseModel):
    pending_token: str
    factors: list[str] = Field(description="kinds of second factor the account has")


class FactorStep(BaseModel):
    pending_token: str = Field(max_length=128)
    code: str = Field(max_length=100, description="TOTP code or Yubico OTP")


class SessionToken(BaseModel):
    token: str
    expires_at: datetime


@router.post(
    "/login",
    response_model=PendingLogin,
    responses={401: {"description": "wrong username or password (reason login.bad_credentials)"}},
)
@csrf_exempt("answers with a pending token in the body, sets no cookie, reads none")
def api_login(body: PasswordStep, state: State, db: DB, client: Client) -> PendingLogin:
    # A refusal comes marked recorded: get_db keeps its event and throttle counters, and
    # server/problems.py answers it.
    started = login.begin(
        db, state.login, body.username, body.password, client, state.now(), kind=SessionKind.API
    )
    kinds = login.pending_factor_kinds(started.session.user)
    db.commit()
    return PendingLogin(pending_token=started.token, factors=kinds)


@router.post(
    "/factor",
    response_model=SessionToken,
    responses={401: {"description": "the code was refused, or the login expired"}},
)
@csrf_exempt("the pending token in the body is the credential; sets and reads no cookie")
def api_factor(body: FactorStep, state: State, db: DB, client: Client) -> SessionToken:
    done = login.finish(db, state.login, body.pending_token, body.code, client, state.now())
    db.commit()
    return SessionToken(token=done.token, expires_at=done.session.expires_at)


@router.post("/logout", status_code=204)
def api_logout(session: ApiSession, db: DB, client: Client) -> None:
    if session.kind != SessionKind.API:
        raise HTTPException(400, "use the web page to log out of a browser session")
    login.logout(db, session, client)
    db.commit()
