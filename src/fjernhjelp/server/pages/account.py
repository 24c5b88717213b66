"""The caller's own account: second factors, password, language, notices to the person."""

from __future__ import annotations

import uuid
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from fjernhjelp.audit.log import Actor, Outcome, record
from fjernhjelp.auth import factors, logins, totp
from fjernhjelp.auth.models import Factor, FactorKind, User
from fjernhjelp.auth.passwords import policy_problems
from fjernhjelp.portal import notifications
from fjernhjelp.portal.trail import refusals_audited
from fjernhjelp.server.deps import DB, BrowserSession, Client, PageUser, State, T
from fjernhjelp.server.pages.auth import _qr_svg, safe_next
from fjernhjelp.server.pages.render import render
from fjernhjelp.server.portal_caller import PageCaller

router = APIRouter(prefix="/account")

NOTICES = ("factor_added", "factor_removed", "password_changed")


def _page(request: Request, t: T, user: User, status_code: int = 200, **extra: object) -> Response:
    return render(request, t, "account.html", status_code=status_code, account=user, **extra)


@router.get("", response_class=HTMLResponse)
def account(request: Request, t: T, user: PageUser, notice: str | None = None) -> Response:
    return _page(request, t, user, notice=t(f"notice.{notice}") if notice in NOTICES else None)


def _own_factor(db: DB, user: User, factor_id: uuid.UUID) -> Factor | None:
    factor = db.get(Factor, factor_id)
    # Someone else's factor id answers exactly like one that does not exist.
    return factor if factor is not None and factor.user_id == user.id else None


@router.post("/factors/totp", response_class=HTMLResponse)
def totp_start(
    request: Request,
    state: State,
    db: DB,
    t: T,
    user: PageUser,
    label: Annotated[str, Form(max_length=100)] = "Authenticator",
) -> Response:
    factor, secret = factors.start_totp(db, state.keys.at_rest, user, label.strip() or "TOTP")
    db.commit()
    uri = totp.provisioning_uri(secret, user.username)
    return render(
        request,
        t,
        "account_totp.html",
        factor=factor,
        qr_svg=_qr_svg(uri),
        secret=totp.format_secret(secret),
        otpauth_uri=uri,
    )


@router.post("/factors/totp/{factor_id}/confirm", response_class=HTMLResponse)
def totp_confirm(
    request: Request,
    state: State,
    db: DB,
    client: Client,
    t: T,
    user: PageUser,
    factor_id: uuid.UUID,
    code: Annotated[str, Form(max_length=20)],
) -> Response:
    factor = _own_factor(db, user, factor_id)
    if factor is None or factor.confirmed or factor.kind != FactorKind.TOTP:
        return _page(request, t, user, 404, error=t("factor.not_found"))
    try:
        factors.confirm_totp(db, state.keys.at_rest, factor, code)
    except factors.FactorRejected:
        record(
            db,
            "account.factor.added",
            Outcome.FAILURE,
            actor=Actor.of(user),
            reason="wrong_code",
            factor="totp",
            source_address=client.source_address,
        )
        db.commit()
        secret = factors.totp_secret(state.keys.at_rest, factor)
        uri = totp.provisioning_uri(secret, user.username)
        return render(
            request,
            t,
            "account_totp.html",
            status_code=422,
            factor=factor,
            qr_svg=_qr_svg(uri),
            secret=totp.format_secret(secret),
            otpauth_uri=uri,
            error=t("factor.wrong_code"),
        )
    record(
        db,
        "account.factor.added",
        Outcome.SUCCESS,
        actor=Actor.of(user),
        factor="totp",
        customer_org_id=user.organisation_id,
        source_address=client.source_address,
        details={"factor": str(factor.id), "label": factor.label},
    )
    db.commit()
    return RedirectResponse("/account?notice=factor_added", status_code=303)


@router.post("/factors/yubikey", response_class=HTMLResponse)
def yubikey_add(
    request: Request,
    state: State,
    db: DB,
    client: Client,
    t: T,
    user: PageUser,
    aes_key: Annotated[str, Form(max_length=64)],
    private_id: Annotated[str, Form(max_length=32)],
    otp: Annotated[str, Form(max_length=100)],
    label: Annotated[str, Form(max_length=100)] = "YubiKey",
) -> Response:
    try:
        key = bytes.fromhex(aes_key.replace(" ", ""))
        pid = bytes.fromhex(private_id.replace(" ", ""))
        if len(key) != 16 or len(pid) != 6:
            raise ValueError
    except ValueError:
        return _page(request, t, user, 422, error=t("factor.yubikey_bad_secret"))
    public_id = otp.strip().lower()[:-32]
    if db.query(Factor).filter(Factor.public_id == public_id).first() is not None:
        return _page(request, t, user, 422, error=t("factor.yubikey_taken"))
    try:
        factor = factors.add_yubikey(
            db, state.keys.at_rest, user, label.strip() or "YubiKey", key, pid, otp
        )
    except factors.FactorRejected as exc:
        db.rollback()
        record(
            db,
            "account.factor.added",
            Outcome.FAILURE,
            actor=Actor.of(user),
            reason=exc.failure.value,
            factor="yubico",
            source_address=client.source_address,
        )
        db.commit()
        return _page(request, t, user, 422, error=t("factor.yubikey_rejected"))
    record(
        db,
        "account.factor.added",
        Outcome.SUCCESS,
        actor=Actor.of(user),
        factor="yubico",
        customer_org_id=user.organisation_id,
        source_address=client.source_address,
        details={"factor": str(factor.id), "label": factor.label, "public_id": public_id},
    )
    db.commit()
    return RedirectResponse("/account?notice=factor_added", status_code=303)


@router.post("/factors/{factor_id}/remove", response_class=HTMLResponse)
def factor_remove(
    request: Request, db: DB, client: Client, t: T, user: PageUser, factor_id: uuid.UUID
) -> Response:
    factor = _own_factor(db, user, factor_id)
    if factor is None:
        return _page(request, t, user, 404, error=t("factor.not_found"))
    if factor.confirmed and len(user.confirmed_factors) <= 1 and user.needs_second_factor:
        return _page(request, t, user, 409, error=t("factor.last_one"))
    details = {"factor": str(factor.id), "label": factor.label, "kind": factor.kind}
    user.factors.remove(factor)
    record(
        db,
        "account.factor.removed",
        Outcome.SUCCESS,
        actor=Actor.of(user),
        customer_org_id=user.organisation_id,
        source_address=client.source_address,
        details=details,
    )
    db.commit()
    return RedirectResponse("/account?notice=factor_removed", status_code=303)


@router.post("/password", response_class=HTMLResponse)
def password_change(
    request: Request,
    state: State,
    db: DB,
    client: Client,
    t: T,
    session: BrowserSession,
    user: PageUser,
    current: Annotated[str, Form(max_length=1024)],
    new: Annotated[str, Form(max_length=1024)],
    new_again: Annotated[str, Form(max_length=1024)],
) -> Response:
    if not state.login.passwords.verify(user.password_hash, current):
        record(
            db,
            "account.password.changed",
            Outcome.FAILURE,
            actor=Actor.of(user),
            reason="wrong_password",
            source_address=client.source_address,
        )
        db.commit()
        return _page(request, t, user, 422, error=t("password.wrong_current"))
    problems = policy_problems(
        new, min_length=state.settings.password_min_length, username=user.username, email=user.email
    )
    if new != new_again:
        problems.append("password.mismatch")
    if problems:
        return _page(request, t, user, 422, error=" ".join(t(p) for p in problems))
    user.password_hash = state.login.passwords.hash(new)
    user.password_changed_at = state.now()
    # Whoever else was logged in with the old password is logged out.
    ended = logins.end_others_for_user(db, user.id, keep=session.id if session else None)
    record(
        db,
        "account.password.changed",
        Outcome.SUCCESS,
        actor=Actor.of(user),
        customer_org_id=user.organisation_id,
        source_address=client.source_address,
        details={"other_sessions_ended": ended},
    )
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
    with refusals_audited(db, caller, "notification.dismissed"):
        notifications.dismiss_own(db, caller, notification_id)
    db.commit()
    return RedirectResponse(
        "/account/notices?" + urlencode({"next": safe_next(next)}), status_code=303
    )
