"""A user's own account page: more factors, removing one, changing the password."""

from __future__ import annotations

import re

import pyotp
from fastapi.testclient import TestClient
from sqlalchemy import select

from fjernhjelp.audit.models import AuditEvent
from fjernhjelp.auth import yubico
from fjernhjelp.auth.models import Factor, User
from tests.helpers import csrf_from, make_org, make_user
from tests.server.test_pages_login import web_login

AES = bytes(range(16))
PRIVATE_ID = bytes.fromhex("0a0b0c0d0e0f")
PUBLIC_ID = "cccjgjgkhcbb"


def _otp(counter: int, use: int) -> str:
    return PUBLIC_ID + yubico.encrypt_token(AES, yubico.Token(PRIVATE_ID, counter, 1, use, 7))


def _actions(db) -> list[tuple[str, str]]:
    db.rollback()
    db.expire_all()
    rows = db.execute(select(AuditEvent).order_by(AuditEvent.seq)).scalars()
    return [(e.action, e.outcome) for e in rows]


def test_add_a_second_totp_factor(client, db, state) -> None:
    org = make_org(db)
    tech = make_user(db, state, org, "tekniker")
    db.commit()
    web_login(client, tech)
    token = csrf_from(client.get("/account").text)
    page = client.post("/account/factors/totp", data={"label": "Nettbrett", "csrf_token": token})
    secret = re.search(r'data-testid="totp-secret">([A-Z2-7 ]+)<', page.text).group(1)
    action = re.search(r'action="(/account/factors/totp/[^"]+/confirm)"', page.text).group(1)
    wrong = client.post(action, data={"code": "000000", "csrf_token": token})
    assert wrong.status_code in (303, 422)  # 303 only in the 1-in-a-million case it matched
    r = client.post(
        action, data={"code": pyotp.TOTP(secret.replace(" ", "")).now(), "csrf_token": token}
    )
    assert r.status_code == 303
    db.rollback()
    db.expire_all()
    assert {f.label for f in db.get(User, tech.user.id).confirmed_factors} == {"phone", "Nettbrett"}
    assert ("account.factor.added", "success") in _actions(db)


def test_add_a_yubikey_then_log_in_with_it(app, client, db, state) -> None:
    org = make_org(db)
    tech = make_user(db, state, org, "tekniker")
    db.commit()
    web_login(client, tech)
    token = csrf_from(client.get("/account").text)
    r = client.post(
        "/account/factors/yubikey",
        data={
            "label": "Nøkkel",
            "aes_key": AES.hex(),
            "private_id": PRIVATE_ID.hex(),
            "otp": _otp(1, 0),
            "csrf_token": token,
        },
    )
    assert r.status_code == 303
    with TestClient(app, base_url="http://testserver", follow_redirects=False) as other:
        web_login(other, tech, code=_otp(1, 1))
        assert other.get("/console").status_code == 200
    # The key's secret is stored sealed, never in clear.
    db.rollback()
    factor = db.execute(select(Factor).where(Factor.kind == "yubico")).scalar_one()
    assert AES not in factor.secret_sealed and factor.public_id == PUBLIC_ID


def test_yubikey_with_the_wrong_secret_is_refused(client, db, state) -> None:
    org = make_org(db)
    tech = make_user(db, state, org, "tekniker")
    db.commit()
    web_login(client, tech)
    token = csrf_from(client.get("/account").text)
    r = client.post(
        "/account/factors/yubikey",
        data={
            "aes_key": bytes(16).hex(),
            "private_id": PRIVATE_ID.hex(),
            "otp": _otp(1, 0),
            "csrf_token": token,
        },
    )
    assert r.status_code == 422
    assert ("account.factor.added", "failure") in _actions(db)


def test_the_last_factor_cannot_be_removed(client, db, state) -> None:
    org = make_org(db)
    tech = make_user(db, state, org, "tekniker")
    db.commit()
    web_login(client, tech)
    page = client.get("/account").text
    remove = re.search(r'action="(/account/factors/[^"]+/remove)"', page).group(1)
    r = client.post(remove, data={"csrf_token": csrf_from(page)})
    assert r.status_code == 409
    db.rollback()
    db.expire_all()
    assert len(db.get(User, tech.user.id).confirmed_factors) == 1


def test_someone_elses_factor_is_not_found(client, db, state) -> None:
    org = make_org(db)
    tech = make_user(db, state, org, "tekniker")
    other = make_user(db, state, org, "kollega")
    db.commit()
    victim_factor = other.user.factors[0].id
    web_login(client, tech)
    token = csrf_from(client.get("/account").text)
    r = client.post(f"/account/factors/{victim_factor}/remove", data={"csrf_token": token})
    assert r.status_code == 404
    db.rollback()
    assert db.get(Factor, victim_factor) is not None


def test_password_change_logs_out_other_sessions(app, client, db, state) -> None:
    org = make_org(db)
    tech = make_user(db, state, org, "tekniker")
    db.commit()
    web_login(client, tech)
    with TestClient(app, base_url="http://testserver", follow_redirects=False) as laptop:
        web_login(laptop, tech)
        token = csrf_from(client.get("/account").text)
        weak = client.post(
            "/account/password",
            data={
                "current": tech.password,
                "new": "password123",
                "new_again": "password123",
                "csrf_token": token,
            },
        )
        assert weak.status_code == 422
        r = client.post(
            "/account/password",
            data={
                "current": tech.password,
                "new": "Nytt og langt passord 9",
                "new_again": "Nytt og langt passord 9",
                "csrf_token": token,
            },
        )
        assert r.status_code == 303
        assert client.get("/console").status_code == 200  # this browser stays in
        assert laptop.get("/console").status_code == 303  # the other one is out
