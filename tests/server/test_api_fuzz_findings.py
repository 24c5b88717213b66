"""What the API fuzzing (test_api_fuzz.py) found, each kept as a plain regression test."""

from __future__ import annotations

from sqlalchemy import func, select

from fjernhjelp.audit.models import AuditEvent
from tests.portal.web import Api
from tests.portal.world import build_world
from tests.server.test_problems import assert_problem


def test_a_nul_character_is_a_malformed_request_on_every_database(client, db, state) -> None:  # type: ignore[no-untyped-def]
    # PostgreSQL refused the statement (a 500); SQLite stored the name.
    world = build_world(db, state)
    db.rollback()
    events = db.execute(select(func.count()).select_from(AuditEvent)).scalar_one()
    r = client.post("/api/v1/auth/login", json={"username": "\x00", "password": "x" * 12})
    body = assert_problem(r, 422, "invalid_request")
    assert body["errors"] == [
        {
            "loc": ["body", "username"],
            "msg": "text may not contain the NUL character",
            "type": "nul_character",
        }
    ]
    admin = Api(client, world.gp_admin)
    r = admin.post("/groups", {"name": "Lab\x00"})
    assert_problem(r, 422, "invalid_request")
    r = admin.get("/audit/events?action=auth%00")
    assert assert_problem(r, 422, "invalid_request")["errors"][0]["loc"] == ["query", "action"]
    r = admin.post("/grants", {"technician_ids": ["\x00"], "permissions": []})
    assert assert_problem(r, 422)["errors"][0]["loc"] == ["body", "technician_ids", 0]
    db.rollback()
    # Only the admin's own login was recorded: the refused requests did nothing.
    logins = db.execute(select(func.count()).select_from(AuditEvent)).scalar_one() - events
    assert logins == 2  # password step and second factor


def test_a_body_that_is_not_json_is_a_documented_400(client) -> None:  # type: ignore[no-untyped-def]
    r = client.post(
        "/api/v1/auth/login", content=b"\xff\xfe{", headers={"content-type": "application/json"}
    )
    assert_problem(r, 400, "bad_request")
    document = client.get("/api/v1/openapi.json").json()
    login = document["paths"]["/api/v1/auth/login"]["post"]
    assert "400" in login["responses"] and "503" in login["responses"]
