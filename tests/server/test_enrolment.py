"""One-time enrolment links: set a password, enrol TOTP, and the link is spent."""

from __future__ import annotations

import re
from datetime import timedelta

import pyotp
from sqlalchemy import select

from fjernhjelp.audit.log import Actor
from fjernhjelp.audit.models import AuditEvent
from fjernhjelp.auth import enrolment
from fjernhjelp.auth.accounts import create_user
from fjernhjelp.auth.models import User
from tests.helpers import csrf_from, make_org

NEW_PASSWORD = "Fjellvann og blåbær 2026"


def _invite(db, state, username="ny-tekniker"):
    org = make_org(db, "Leverandør AS", gives=True)
    user = create_user(
        db,
        organisation=org,
        username=username,
        email=f"{username}@example.no",
        display_name="Ny Tekniker",
        is_technician=True,
        actor=Actor.system(),
    )
    token = enrolment.issue_link(
        db, user, actor=Actor.system(), now=state.now(), lifetime=timedelta(hours=1)
    )
    db.commit()
    return user, f"/enroll/{token}"


def _secret(page: str) -> str:
    return re.search(r'data-testid="totp-secret">([A-Z2-7 ]+)<', page).group(1).replace(" ", "")


def test_enrolment_activates_the_account_once(client, db, state) -> None:
    user, link = _invite(db, state)
    page = client.get(link)
    assert page.status_code == 200 and "<svg" in page.text and "otpauth://totp/" in page.text
    secret = _secret(page.text)
    assert client.get(link).text.count(secret[:8]) >= 1  # reload shows the same secret
    r = client.post(
        link,
        data={
            "password": NEW_PASSWORD,
            "password_again": NEW_PASSWORD,
            "code": pyotp.TOTP(secret).now(),
            "csrf_token": csrf_from(page.text),
        },
    )
    assert r.status_code == 303 and r.headers["location"] == "/login?notice=enrolled"
    db.rollback()
    db.expire_all()
    user = db.get(User, user.id)
    assert user.status == "active" and len(user.confirmed_factors) == 1
    # The link is spent: a second visit is refused and audited.
    again = client.get(link)
    assert again.status_code == 404
    db.rollback()
    event = (
        db.execute(
            select(AuditEvent)
            .where(AuditEvent.action == "account.enrolment")
            .order_by(AuditEvent.seq.desc())
        )
        .scalars()
        .first()
    )
    assert (event.outcome, event.reason) == ("denied", "used_link")


def test_weak_password_and_wrong_code_are_refused_and_nothing_changes(client, db, state) -> None:
    user, link = _invite(db, state)
    page = client.get(link)
    token = csrf_from(page.text)
    secret = _secret(page.text)
    for password, code, expect in (
        ("password1234", pyotp.TOTP(secret).now(), "vanlig"),
        ("kort", pyotp.TOTP(secret).now(), "kort"),
        (NEW_PASSWORD, "000000" if pyotp.TOTP(secret).now() != "000000" else "111111", "Koden"),
    ):
        r = client.post(
            link,
            data={
                "password": password,
                "password_again": password,
                "code": code,
                "csrf_token": token,
            },
            headers={"Accept-Language": "nb"},
        )
        assert r.status_code == 422 and expect in r.text
    db.rollback()
    assert db.get(User, user.id).status == "pending"


def test_expired_link_is_refused(client, db, state, clock) -> None:
    _, link = _invite(db, state)
    clock.advance(hours=2)
    assert client.get(link).status_code == 404


def test_reissuing_a_link_kills_the_old_one(client, db, state) -> None:
    user, old = _invite(db, state)
    token = enrolment.issue_link(
        db, user, actor=Actor.system(), now=state.now(), lifetime=timedelta(hours=1)
    )
    db.commit()
    assert client.get(old).status_code == 404
    assert client.get(f"/enroll/{token}").status_code == 200
