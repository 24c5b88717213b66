"""No web request can create an operator (the lesson of CVE-2024-1709)."""

from __future__ import annotations

import json
import subprocess
import sys

from fastapi.routing import APIRoute
from sqlalchemy import func, select

from fjernhjelp.auth.models import User
from tests.helpers import csrf_from, probing_events


def test_no_route_mentions_setup_or_operator_creation(app) -> None:
    # FastAPI 0.16x keeps included routers nested: walk them all, and check the walk
    # reaches routes that only exist inside them, so the test cannot pass on nothing.
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # pragma: no cover - older FastAPI lists every route flat
        paths = {r.path for r in app.routes if isinstance(r, APIRoute)}
    else:
        paths = {r.path for r in iter_route_contexts(app.routes)}
    assert {"/api/v1/machines", "/api/v1/auth/login", "/portal/machines"} <= paths
    assert not [p for p in paths if any(w in p for w in ("setup", "install", "wizard", "operator"))]


def test_posting_to_guessable_setup_paths_creates_nobody(client, db, state) -> None:
    token = csrf_from(client.get("/login").text)
    for path in (
        "/setup",
        "/setup/",
        "/SetupWizard.aspx",
        "/api/v1/setup",
        "/api/v1/users",
        "/api/v1/operators",
        "/admin/create-operator",
        "/enroll/new",
    ):
        r = client.post(path, data={"username": "evil", "password": "x" * 20, "csrf_token": token})
        assert r.status_code in (403, 404, 405, 422), path
    assert db.execute(select(func.count()).select_from(User)).scalar_one() == 0
    # Probes are counted per address and written as one event (server/probes.py).
    (event,) = probing_events(state, db)
    assert event.outcome == "denied" and event.action == "security.probing"
    details = json.loads(event.details)
    # Seven probes: /enroll/new is a real route (an unknown token), answered by it.
    assert details["count"] == 7
    assert {"kind": "unknown_endpoint", "method": "POST", "path": "/setup"} in details["samples"]


def test_command_line_creates_an_operator_with_a_one_time_link(settings, db, client) -> None:
    env = {
        "FJERNHJELP_DATA_DIR": str(settings.data_dir),
        "FJERNHJELP_DATABASE_URL": settings.effective_database_url,
        "PATH": "/usr/bin:/bin",
    }
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "fjernhjelp",
            "admin",
            "create-operator",
            "--username",
            "driftssjef",
            "--email",
            "drift@example.no",
            "--name",
            "Drift Sjef",
            "--org-number",
            "990000034",
        ],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    link = next(line for line in out.splitlines() if "/enroll/" in line).strip()
    user = db.execute(select(User).where(User.username == "driftssjef")).scalar_one()
    assert user.is_operator and user.status == "pending" and user.password_hash is None
    path = link.split("127.0.0.1:8080", 1)[1]
    assert client.get(path).status_code == 200
