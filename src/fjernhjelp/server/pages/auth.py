"""Login (password, then second factor), logout, and one-time enrolment links."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

import segno
from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from fjernhjelp.auth import enrolment, login, logins, totp
from fjernhjelp.auth.login import LoginExpired, LoginRefused
from fjernhjelp.auth.models import SessionStage
from fjernhjelp.portal import notifications
from fjernhjelp.server.deps import DB, BrowserSession, Client, State, T
from fjernhjelp.server.pages.render import render
from fjernhjelp.server.security import cookie_name
from fjernhjelp.server.state import AppState

router = APIRouter()

PENDING_COOKIE = "fjh_login"


def safe_next(value: str | None) -> str:
    """Only a path on this site: never another host (an open redirect would help phishing)."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    return value


def _set_cookie(response: Response, state: AppState, name: str, value: str, max_age: int) -> None:
    response.set_cookie(
        cookie_name(state.settings, name),
        value,
        max_age=max_age,
        path="/",
        httponly=True,
        samesite="strict",
        secure=state.settings.secure_cookies,
    )


def _clear_cookie(response: Response, state: AppState, name: str) -> None:
    response.delete_cookie(
        cookie_name(state.settings, name),
        path="/",
        httponly=True,
        samesite="strict",
        secure=state.settings.secure_cookies,
    )


def _refused_page(
    request: Request, t: T, exc: LoginRefused, template: str, **context: object
) -> Response:
    # The form is shown again with the refusal's sentence, so the central mapping
    # (server/problems.py) does not answer it; status, sentence and Retry-After are the
    # refusal's own, as in the API's answer.
    response = render(
        request,
        t,
        template,
        status_code=exc.status,
        error=t(exc.sentence_key, **exc.params),
        **context,
    )
    if exc.retry_after is not None:
        response.headers["Retry-After"] = str(exc.retry_after)
    return response


@router.get("/login", response_class=HTMLResponse)
def login_form(
    request: Request, t: T, session: BrowserSession, next: str = "/", notice: str | None = None
) -> Response:
    if session is not None:
        return RedirectResponse(safe_next(next), status_code=303)
    notice_text = t(f"notice.{notice}") if notice in ("enrolled", "logged_out", "expired") else None
    return render(request, t, "login.html", next=safe_next(next), notice=notice_text)


@router.post("/login", response_class=HTMLResponse)
def login_submit(
    request: Request,
    state: State,
    db: DB,
    client: Client,
    t: T,
    username: Annotated[str, Form(max_length=200)],
    password: Annotated[str, Form(max_length=1024)],
    next: Annotated[str, Form()] = "/",
) -> Response:
    try:
        started = login.begin(db, state.login, username, password, client, state.now())
    except LoginRefused as exc:
        db.commit()  # the refusal's audit event and throttle counters
        return _refused_page(request, t, exc, "login.html", next=safe_next(next), username=username)
    db.commit()
    response = RedirectResponse(f"/login/factor?next={safe_next(next)}", status_code=303)
    _set_cookie(
        response, state, PENDING_COOKIE, started.token, state.settings.login_pending_minutes * 60
    )
    return response


@router.get("/login/factor", response_class=HTMLResponse)
def factor_form(request: Request, state: State, db: DB, t: T, next: str = "/") -> Response:
    pending = logins.find(
        db,
        request.cookies.get(cookie_name(state.settings, PENDING_COOKIE)),
        policy=state.login.policy,
        now=state.now(),
        stage=SessionStage.PASSWORD_OK,
    )
    db.commit()
    if pending is None:
        return RedirectResponse("/login?notice=expired", status_code=303)
    return render(
        request,
        t,
        "login_factor.html",
        next=safe_next(next),
        kinds=login.pending_factor_kinds(pending.user),
        user=None,
    )


@router.post("/login/factor", response_class=HTMLResponse)
def factor_submit(
    request: Request,
    state: State,
    db: DB,
    client: Client,
    t: T,
    code: Annotated[str, Form(max_length=100)],
    next: Annotated[str, Form()] = "/",
) -> Response:
    pending_token = request.cookies.get(cookie_name(state.settings, PENDING_COOKIE)) or ""
    try:
        done = login.finish(db, state.login, pending_token, code, client, state.now())
    except LoginExpired:
        db.commit()
        return RedirectResponse("/login?notice=expired", status_code=303)
    except LoginRefused as exc:
        db.commit()  # the refusal's audit event and throttle counters
        return _refused_page(
            request, t, exc, "login_factor.html", next=safe_next(next), kinds=[], user=None
        )
    # A notice addressed to this person (their account was re-enrolled) comes first.
    target = safe_next(next)
    if notifications.open_for_person(db, done.session.user):
        target = "/account/notices?" + urlencode({"next": target})
    db.commit()
    response = RedirectResponse(target, status_code=303)
    _clear_cookie(response, state, PENDING_COOKIE)
    _set_cookie(
        response, state, "fjh_session", done.token, state.settings.session_absolute_hours * 3600
    )
    return response


@router.post("/logout")
def logout(state: State, db: DB, client: Client, session: BrowserSession) -> Response:
    if session is not None:
        login.logout(db, session, client)
        db.commit()
    response = RedirectResponse("/login?notice=logged_out", status_code=303)
    _clear_cookie(response, state, "fjh_session")
    return response


# -- enrolment ---------------------------------------------------------------


def _qr_svg(data: str) -> str:
    return segno.make(data, error="m").svg_inline(scale=4, border=2, dark="#111", light="#fff")


def _enrol_page(
    request: Request,
    state: State,
    db: DB,
    t: T,
    token: str,
    link: enrolment.EnrolmentLink,
    status_code: int = 200,
    errors: list[str] | None = None,
) -> Response:
    pending = enrolment.pending_totp(db, state.keys.at_rest, link)
    db.commit()
    uri = totp.provisioning_uri(pending.secret, link.user.username)
    return render(
        request,
        t,
        "enrol.html",
        status_code=status_code,
        token=token,
        account=link.user,
        qr_svg=_qr_svg(uri),
        secret=totp.format_secret(pending.secret),
        otpauth_uri=uri,
        errors=[t(e) for e in errors or []],
        min_length=state.settings.password_min_length,
        user=None,
    )


def _link_or_refusal(
    request: Request, state: State, db: DB, client: Client, t: T, token: str
) -> enrolment.EnrolmentLink | Response:
    try:
        return enrolment.open_link(db, token, state.now())
    except enrolment.LinkInvalid as exc:
        return _link_refused(request, db, client, t, exc)


def _link_refused(
    request: Request, db: DB, client: Client, t: T, exc: enrolment.LinkInvalid
) -> Response:
    enrolment.link_refused(db, exc, client.source_address)
    db.commit()
    return render(
        request,
        t,
        "message.html",
        status_code=404,
        title=t("enrol.invalid_title"),
        message=t("enrol.invalid"),
        user=None,
    )


@router.get("/enroll/{token}", response_class=HTMLResponse)
def enrol_form(
    request: Request, state: State, db: DB, client: Client, t: T, token: str
) -> Response:
    link = _link_or_refusal(request, state, db, client, t, token)
    if isinstance(link, Response):
        return link
    return _enrol_page(request, state, db, t, token, link)


@router.post("/enroll/{token}", response_class=HTMLResponse)
def enrol_submit(
    request: Request,
    state: State,
    db: DB,
    client: Client,
    t: T,
    token: str,
    password: Annotated[str, Form(max_length=1024)],
    password_again: Annotated[str, Form(max_length=1024)],
    code: Annotated[str, Form(max_length=20)],
) -> Response:
    link = _link_or_refusal(request, state, db, client, t, token)
    if isinstance(link, Response):
        return link
    try:
        enrolment.complete(
            db,
            link=link,
            passwords=state.login.passwords,
            at_rest_key=state.keys.at_rest,
            password=password,
            password_again=password_again,
            code=code,
            min_length=state.settings.password_min_length,
            now=state.now(),
            source_address=client.source_address,
        )
    except enrolment.EnrolmentRejected as exc:
        db.commit()  # keeps the audit event of a wrong code
        return _enrol_page(request, state, db, t, token, link, 422, exc.problems)
    except enrolment.LinkInvalid as exc:
        db.rollback()  # another post of the same link won: nothing of this one stays
        return _link_refused(request, db, client, t, exc)
    db.commit()
    return RedirectResponse("/login?notice=enrolled", status_code=303)
