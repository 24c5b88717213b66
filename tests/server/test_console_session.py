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
