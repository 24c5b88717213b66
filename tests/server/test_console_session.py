"""The session view's route and the browser libraries' routes, through the real app."""

from __future__ import annotations

import json
import re

import pytest
from fastapi.testclient import TestClient

from tests.helpers import Account, make_org, make_user
from tests.server.test_pages_login import web_login


@pytest.fixture
def tech(db, state) -> Account:
    org = make_org(db, "Leverandør AS", gives=True, receives=False)
    account = make_user(db, state, org, "tekniker", technician=True)
    db.commit()
    return account


@pytest.fixture
def admin(db, state) -> Account:
    org = make_org(db, "Blåbærlia legekontor")
    account = make_user(db, state, org, "sjef", admin=True, technician=False)
    db.commit()
    return account


def config_of(page: str) -> dict[str, object]:
    found = re.search(r'<script type="application/json" id="session-config">(.*?)</script>', page)
    assert found is not None
    return json.loads(found.group(1))


def test_the_session_view_is_for_logged_in_technicians(client: TestClient, tech: Account) -> None:
    machine = "9d3c2a1b-7e6f-4a5b-8c9d-0e1f2a3b4c5d"
    r = client.get(f"/console/connect/{machine}")
    assert r.status_code == 303 and r.headers["location"].startswith("/login?next=")
    web_login(client, tech)
    r = client.get(f"/console/connect/{machine}")
    assert r.status_code == 200
    assert "script-src 'self'" in r.headers["content-security-policy"]
    assert '<script type="module" src="/static/js/console.js"></script>' in r.text
    config = config_of(r.text)
    assert config["machine_id"] == machine
    assert config["sessions_url"] == "/api/v1/sessions"
    texts = config["texts"]
    assert isinstance(texts, dict)
    assert texts["session.state.waiting_consent"].startswith("Venter på at brukeren")
    assert texts["session.refuse.generic"] == "Maskinen avviste økten (kode {code})."
    assert all(key.startswith("session.") for key in texts)
    assert 'name="csrf-token"' in r.text


def test_the_session_view_in_english(client: TestClient, tech: Account) -> None:
    web_login(client, tech)
    client.cookies.set("fjh_lang", "en")
    r = client.get("/console/connect/m-1")
    assert config_of(r.text)["texts"]["session.state.connected"] == "Connected"  # type: ignore[index]


def test_the_session_view_is_refused_to_others_and_to_odd_ids(
    client: TestClient, admin: Account, tech: Account
) -> None:
    web_login(client, admin)
    assert client.get("/console/connect/m-1").status_code == 403
    client.cookies.clear()
    web_login(client, tech)
    for bad in ("a" * 65, "m%3Cscript%3E", "m%20x"):
        r = client.get(f"/console/connect/{bad}")
        assert r.status_code == 404, bad
        assert "m<script>" not in r.text  # the path is shown escaped, if at all


@pytest.mark.parametrize(
    ("path", "found"),
    [
        ("/vendor/novnc/core/rfb.js", True),
        ("/vendor/novnc/vendor/pako/lib/zlib/inflate.js", True),
        ("/vendor/xterm/lib/xterm.mjs", True),
        ("/vendor/xterm/css/xterm.css", True),
        ("/vendor/xterm-addon-fit/lib/addon-fit.mjs", True),
        ("/static/js/console.js", True),
        ("/static/js/tunnel/index.js", True),
        ("/vendor/novnc/package.json", False),  # only the folders a page loads
        ("/vendor/xterm/src/browser/Terminal.ts", False),
        ("/vendor/novnc/core/../package.json", False),
    ],
)
def test_browser_libraries_are_served_as_modules(
    client: TestClient, path: str, found: bool
) -> None:
    r = client.get(path)
    if not found:
        assert r.status_code == 404
        return
    assert r.status_code == 200
    if path.endswith((".js", ".mjs")):
        assert r.headers["content-type"] == "text/javascript; charset=utf-8"
    assert r.headers["x-content-type-options"] == "nosniff"


def test_the_session_view_allows_only_style_elements_with_its_own_nonce(
    client: TestClient, tech: Account
) -> None:
    """xterm.js adds <style> elements: the page's policy names a fresh nonce for them
    (never 'unsafe-inline'), the page carries it, and other pages keep the plain policy."""
    web_login(client, tech)
    machine = "9d3c2a1b-7e6f-4a5b-8c9d-0e1f2a3b4c5d"
    nonces = []
    for _ in range(2):
        r = client.get(f"/console/connect/{machine}")
        policy = r.headers["content-security-policy"]
        assert "unsafe-inline" not in policy and "script-src 'self';" in policy
        found = re.search(r"style-src-elem 'self' 'nonce-([A-Za-z0-9_-]{20,})'", policy)
        assert found is not None, policy
        assert f'<style id="style-nonce" nonce="{found.group(1)}"></style>' in r.text
        nonces.append(found.group(1))
    assert nonces[0] != nonces[1]
    assert "nonce-" not in client.get("/console").headers["content-security-policy"]


def test_favicon_is_served_on_every_page(client: TestClient) -> None:
    r = client.get("/favicon.ico")
    assert r.status_code == 200 and r.headers["content-type"] == "image/x-icon"
    assert r.content[:4] == b"\x00\x00\x01\x00"  # an ICO header
    svg = client.get("/static/favicon.svg")
    assert svg.status_code == 200 and "<svg" in svg.text
    login = client.get("/login").text
    assert '<link rel="icon" href="/static/favicon.svg"' in login
