"""Logging in through the web pages, and the protections around it."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from fjernhjelp.audit.models import AuditEvent
from tests.helpers import Account, csrf_from, make_org, make_user, probing_events


@pytest.fixture
def tech(db, state) -> Account:
    org = make_org(db, "Leverandør AS", gives=True, receives=False)
    account = make_user(db, state, org, "tekniker", technician=True)
    db.commit()
    return account


def web_login(client: TestClient, account: Account, code: str | None = None) -> None:
    page = client.get("/login")
    r = client.post(
        "/login",
        data={
            "username": account.username,
            "password": account.password,
            "csrf_token": csrf_from(page.text),
            "next": "/console",
        },
    )
    assert r.status_code == 303, r.text
    r = client.post(
        "/login/factor",
        data={
            "code": code or account.code(),
            "next": "/console",
            "csrf_token": csrf_from(page.text),
        },
    )
    assert r.status_code == 303 and r.headers["location"] == "/console", r.text


def last_event(db, action: str) -> AuditEvent:
    db.rollback()
    db.expire_all()
    return (
        db.execute(
            select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.seq.desc())
        )
        .scalars()
        .first()
    )


def test_healthz(client: TestClient) -> None:
    r = client.get("/healthz")
    assert r.status_code == 200 and r.json() == {"status": "ok"}


def test_healthz_is_503_when_the_database_is_gone(client: TestClient, state, monkeypatch) -> None:
    monkeypatch.setattr("fjernhjelp.server.health.ping", lambda engine: False)
    r = client.get("/healthz")
    assert r.status_code == 503 and r.json()["status"] == "unavailable"


def test_openapi_document(client: TestClient) -> None:
    doc = client.get("/api/v1/openapi.json").json()
    assert "/api/v1/auth/login" in doc["paths"] and "/api/v1/me" in doc["paths"]


def test_technician_logs_in_and_sees_the_console(client: TestClient, tech: Account) -> None:
    assert client.get("/console").status_code == 303  # not yet
    web_login(client, tech)
    page = client.get("/console")
    assert page.status_code == 200 and 'data-testid="console-empty"' in page.text


def test_security_headers_on_every_page(client: TestClient) -> None:
    r = client.get("/login")
    h = r.headers
    assert "default-src 'self'" in h["content-security-policy"]
    assert "frame-ancestors 'none'" in h["content-security-policy"]
    assert h["x-content-type-options"] == "nosniff"
    assert h["x-frame-options"] == "DENY"
    assert h["referrer-policy"] == "no-referrer"
    assert h["cache-control"] == "no-store"


def test_session_cookie_is_httponly_and_samesite(client: TestClient, tech: Account) -> None:
    page = client.get("/login")
    r = client.post(
        "/login",
        data={
            "username": tech.username,
            "password": tech.password,
            "csrf_token": csrf_from(page.text),
        },
    )
    r = client.post("/login/factor", data={"code": tech.code(), "csrf_token": csrf_from(page.text)})
    cookie = next(
        v for k, v in r.headers.multi_items() if k == "set-cookie" and v.startswith("fjh_session=")
    )
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")


def _anonymous_csrf_refusals(state, db) -> dict[str, int]:
    # Nobody's session was used, so these are counted as probing (server/probes.py).
    (event,) = probing_events(state, db)
    assert event.outcome == "denied"
    return json.loads(event.details)["kinds"]


def test_login_form_without_csrf_token_is_refused_and_audited(client, db, state, tech) -> None:
    client.get("/login")
    r = client.post("/login", data={"username": tech.username, "password": tech.password})
    assert r.status_code == 403
    assert _anonymous_csrf_refusals(state, db) == {"csrf_refused:csrf_token_missing": 1}
    assert last_event(db, "auth.login.password") is None  # the password was never checked


def test_csrf_token_from_another_browser_is_refused(app, client, db, state, tech) -> None:
    with TestClient(app, base_url="http://testserver") as attacker:
        foreign = csrf_from(attacker.get("/login").text)
    client.get("/login")
    r = client.post(
        "/login", data={"username": tech.username, "password": tech.password, "csrf_token": foreign}
    )
    assert r.status_code == 403
    assert _anonymous_csrf_refusals(state, db) == {"csrf_refused:csrf_token_invalid": 1}


def test_cross_site_post_is_refused_even_with_a_token(client, db, state, tech) -> None:
    token = csrf_from(client.get("/login").text)
    r = client.post(
        "/login",
        data={"username": tech.username, "password": tech.password, "csrf_token": token},
        headers={"Sec-Fetch-Site": "cross-site"},
    )
    assert r.status_code == 403
    assert _anonymous_csrf_refusals(state, db) == {"csrf_refused:cross_site_request": 1}


def test_logged_in_forms_need_csrf_too(client, db, tech) -> None:
    web_login(client, tech)
    r = client.post("/logout")
    assert r.status_code == 403
    assert client.get("/console").status_code == 200  # still logged in: nothing changed
    event = last_event(db, "security.csrf_refused")
    assert event.actor_name == tech.username


def test_wrong_password_page_says_the_same_as_unknown_user(client, tech) -> None:
    bodies = []
    for username, password in ((tech.username, "wrong-password-1"), ("nobody", "wrong-password-1")):
        token = csrf_from(client.get("/login").text)
        r = client.post(
            "/login", data={"username": username, "password": password, "csrf_token": token}
        )
        assert r.status_code == 401
        bodies.append(r.text.replace(f'value="{username}"', 'value=""'))
    assert bodies[0].split("<main>")[1] == bodies[1].split("<main>")[1].replace(
        csrf_from(bodies[1]), csrf_from(bodies[0])
    )


def test_lockout_answers_429_with_retry_after(client, state, tech) -> None:
    for _ in range(state.login.account_rule.failures_before_lockout):
        token = csrf_from(client.get("/login").text)
        client.post(
            "/login",
            data={"username": tech.username, "password": "nope-nope-nope", "csrf_token": token},
        )
    token = csrf_from(client.get("/login").text)
    r = client.post(
        "/login", data={"username": tech.username, "password": tech.password, "csrf_token": token}
    )
    assert r.status_code == 429 and int(r.headers["retry-after"]) > 0


def test_replayed_code_in_the_browser_is_refused(client, app, tech, db) -> None:
    code = tech.code()
    web_login(client, tech, code)
    with TestClient(app, base_url="http://testserver", follow_redirects=False) as second:
        page = second.get("/login")
        second.post(
            "/login",
            data={
                "username": tech.username,
                "password": tech.password,
                "csrf_token": csrf_from(page.text),
            },
        )
        r = second.post("/login/factor", data={"code": code, "csrf_token": csrf_from(page.text)})
        assert r.status_code == 401
    assert last_event(db, "auth.login.factor").reason == "replayed_code"


def test_open_redirect_is_not_followed(client, tech) -> None:
    page = client.get("/login")
    client.post(
        "/login",
        data={
            "username": tech.username,
            "password": tech.password,
            "csrf_token": csrf_from(page.text),
            "next": "//evil.example/",
        },
    )
    r = client.post(
        "/login/factor",
        data={"code": tech.code(), "next": "//evil.example/", "csrf_token": csrf_from(page.text)},
    )
    assert r.headers["location"] == "/"


def test_idle_session_expires(client, tech, clock, state) -> None:
    web_login(client, tech)
    clock.advance(minutes=state.settings.session_idle_minutes + 1)
    r = client.get("/console")
    assert r.status_code == 303 and r.headers["location"].startswith("/login")


def test_absolute_session_expiry(client, tech, clock, state) -> None:
    web_login(client, tech)
    for _ in range(state.settings.session_absolute_hours * 3):
        clock.advance(minutes=20)
        client.get("/console")  # active all the time, never idle
    r = client.get("/console")
    assert r.status_code == 303


def test_logout_ends_the_session(client, db, tech) -> None:
    web_login(client, tech)
    token = csrf_from(client.get("/console").text)
    assert client.post("/logout", data={"csrf_token": token}).status_code == 303
    assert client.get("/console").status_code == 303
    assert last_event(db, "auth.logout").outcome == "success"


def test_technician_cannot_open_the_portal(client, tech) -> None:
    web_login(client, tech)
    assert client.get("/portal/audit").status_code == 403
