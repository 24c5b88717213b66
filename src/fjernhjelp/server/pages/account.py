"""The caller's own account: second factors, password, language, notices to the person."""

from __future__ import annotations

import uuid
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from fjernhjelp.auth import self_service, totp
from fjernhjelp.auth.models import User
from fjernhjelp.auth.self_service import FactorRefused, PasswordRefused, PendingTotp
from fjernhjelp.caller import Caller
from fjernhjelp.portal import notifications
from fjernhjelp.server.deps import DB, BrowserSession, Client, PageUser, State, T
from fjernhjelp.server.pages.auth import _qr_svg, safe_next
from fjernhjelp.server.pages.render import render
from fjernhjelp.server.portal_caller import PageCaller

router = APIRouter(prefix="/account")

NOTICES = ("factor_added", "factor_removed", "password_changed")


def _person(user: PageUser, state: State, client: Client) -> Caller:
    return Caller.of_person(user, state.now(), client.source_address)


# The signed-in person, as the auth services take them.
Person = Annotated[Caller, Depends(_person)]


def _page(request: Request, t: T, user: User, status_code: int = 200, **extra: object) -> Response:
    return render(request, t, "account.html", status_code=status_code, account=user, **extra)


def _totp_page(
    request: Request,
    t: T,
    user: User,
    pending: PendingTotp,
    status_code: int = 200,
    **extra: object,
) -> Response:
    uri = totp.provisioning_uri(pending.secret, user.username)
    return render(
        request,
        t,
        "account_totp.html",
        status_code=status_code,
        factor=pending.factor,
        qr_svg=_qr_svg(uri),
        secret=totp.format_secret(pending.secret),
        otpauth_uri=uri,
        **extra,
    )


@router.get("", response_class=HTMLResponse)
def account(request: Request, t: T, user: PageUser, notice: str | None = None) -> Response:
    return _page(request, t, user, notice=t(f"notice.{notice}") if notice in NOTICES else None)


# The forms below answer a refusal with the same page and the reason in place, so the
# person can correct it; the refusal's audit event (if any) is committed first.


@router.post("/factors/totp", response_class=HTMLResponse)
def totp_start(
    request: Request,
    state: State,
    db: DB,
    t: T,
    person: Person,
    label: Annotated[str, Form(max_length=100)] = "Authenticator",
) -> Response:
    pending = self_service.start_totp(db, person, state.keys.at_rest, label)
    db.commit()
    return _totp_page(request, t, person.user, pending)


@router.post("/factors/totp/{factor_id}/confirm", response_class=HTMLResponse)
def totp_confirm(
    request: Request,
    state: State,
    db: DB,
    t: T,
    person: Person,
    factor_id: uuid.UUID,
    code: Annotated[str, Form(max_length=20)],
) -> Response:
    try:
        self_service.confirm_totp(db, person, state.keys.at_rest, factor_id, code)
    except self_service.FactorNotFound as refusal:
        return _page(request, t, person.user, refusal.status, error=t(refusal.reason))
    except FactorRefused as refusal:
        db.commit()
        # A wrong code shows the same QR code again: the factor is still pending.
        pending = self_service.pending_totp(db, person, state.keys.at_rest, factor_id)
        return _totp_page(request, t, person.user, pending, refusal.status, error=t(refusal.reason))
    db.commit()
    return RedirectResponse("/account?notice=factor_added", status_code=303)


@router.post("/factors/yubikey", response_class=HTMLResponse)
def yubikey_add(
    request: Request,
    state: State,
    db: DB,
    t: T,
    person: Person,
    aes_key: Annotated[str, Form(max_length=64)],
    private_id: Annotated[str, Form(max_length=32)],
    otp: Annotated[str, Form(max_length=100)],
    label: Annotated[str, Form(max_length=100)] = "YubiKey",
) -> Response:
    try:
        self_service.add_yubikey(
            db,
            person,
            state.keys.at_rest,
            label=label,
            aes_key_hex=aes_key,
            private_id_hex=private_id,
            otp=otp,
        )
    except FactorRefused as refusal:
        db.commit()
        return _page(request, t, person.user, refusal.status, error=t(refusal.reason))
    db.commit()
    return RedirectResponse("/account?notice=factor_added", status_code=303)


@router.post("/factors/{factor_id}/remove", response_class=HTMLResponse)
def factor_remove(request: Request, db: DB, t: T, person: Person, factor_id: uuid.UUID) -> Response:
    try:
        self_service.remove_factor(db, person, factor_id)
    except FactorRefused as refusal:
        return _page(request, t, person.user, refusal.status, error=t(refusal.reason))
    db.commit()
    return RedirectResponse("/account?notice=factor_removed", status_code=303)


@router.post("/password", response_class=HTMLResponse)
def password_change(
    request: Request,
    state: State,
    db: DB,
    t: T,
    session: BrowserSession,
    person: Person,
    current: Annotated[str, Form(max_length=1024)],
    new: Annotated[str, Form(max_length=1024)],
    new_again: Annotated[str, Form(max_length=1024)],
) -> Response:
    try:
        self_service.change_password(
            db,
            person,
            state.login.passwords,
            current=current,
            new=new,
            new_again=new_again,
            min_length=state.settings.password_min_length,
            keep_session=session.id if session else None,
        )
    except PasswordRefused as refusal:
        db.commit()
        error = " ".join(t(p) for p in refusal.problems)
        return _page(request, t, person.user, refusal.status, error=error)
    db.commit()
    return RedirectResponse("/account?notice=password_changed", status_code=303)


# -- notices to the person ---------------------------------------------------------


@router.get("/notices", response_class=HTMLResponse)
def notices(request: Request, db: DB, t: T, user: PageUser, next: str = "/") -> Response:
    """Where a login lands while a notice to this person is open (a re-enrolment)."""
    notes = [
        (n, t(f"notification.{n.kind}", **notifications.params_of(n)))
        for n in notifications.open_for_person(db, user)
    ]
    if not notes:
        return RedirectResponse(safe_next(next), status_code=303)
    return render(request, t, "account_notices.html", notes=notes, next=safe_next(next))


@router.post("/notices/{notification_id}/dismiss")
def dismiss_notice(
    db: DB, caller: PageCaller, notification_id: uuid.UUID, next: Annotated[str, Form()] = "/"
) -> Response:
    notifications.dismiss_own(db, caller, notification_id)
    db.commit()
    return RedirectResponse(
        "/account/notices?" + urlencode({"next": safe_next(next)}), status_code=303
    )
