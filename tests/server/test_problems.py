"""Every refusal of the API has one shape: RFC 9457 problem details (docs/api.md)."""

from __future__ import annotations

import re
import uuid
from typing import Any
from urllib.parse import urlsplit

import httpx
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from sqlalchemy import select

from fjernhjelp.audit.models import AuditEvent
from fjernhjelp.i18n import Translator
from fjernhjelp.server.api.deps import api_session
from tests.helpers import make_org, make_user
from tests.portal.web import Api
from tests.server.test_csrf_everywhere import _routes
from tests.server.test_pages_login import web_login

SHAPE = {"type", "title", "status", "detail", "reason", "instance"}
REFUSAL_STATUSES = ("401", "403", "404", "409", "413", "422", "429")
# Not a token the server gave out; its presence also spares the request the CSRF check,
# which the API skips for bearer tokens (server/deps.py), so the login check answers.
FORGED = {"Authorization": "Bearer forged-token"}


def assert_problem(r: httpx.Response, status: int, reason: str | None = None) -> dict[str, Any]:
    assert r.status_code == status, (r.request.method, r.request.url, r.text)
    assert r.headers["content-type"] == "application/problem+json", r.headers
    body = r.json()
    assert set(body) - {"errors"} == SHAPE, body
    assert body["type"] == "about:blank"
    assert body["status"] == status
    assert body["title"] and body["detail"] and body["reason"]
    assert body["instance"] == urlsplit(str(r.request.url)).path
    if reason is not None:
        assert body["reason"] == reason, body
    return body


def _api_routes(app) -> list[tuple[str, Any]]:  # type: ignore[no-untyped-def]
    """(method, route) for every operation under /api/v1, however FastAPI keeps them."""
    routes = [
        (method, route)
        for route in _routes(app)
        if isinstance(getattr(route, "original_route", route), APIRoute)
        and route.path.startswith("/api/v1/")
        for method in sorted(route.methods)
    ]
    assert len(routes) > 40  # the walk must not quietly find nothing
    return routes


def _has_body(route: Any) -> bool:
    return bool(route.dependant.body_params)


def _needs_login(route: Any) -> bool:
    pending = [route.dependant]
    while pending:
        dependant = pending.pop()
        if dependant.call is api_session:
            return True
        pending.extend(dependant.dependencies)
    return False


def _with_ids(path: str) -> str:
    return re.sub(r"{[^}]+}", lambda _: str(uuid.uuid4()), path)


def _call(client: TestClient, method: str, route: Any, headers: dict[str, str]) -> httpx.Response:
    body = {} if _has_body(route) else None
    return client.request(method, _with_ids(route.path), headers=headers, json=body)


def test_every_api_route_refuses_a_stranger_with_a_problem(client, app) -> None:
    for method, route in _api_routes(app):
        r = _call(client, method, route, FORGED)
        if _needs_login(route):
            assert_problem(r, 401, "unauthenticated")
            assert r.headers["www-authenticate"] == "Bearer"
        else:  # the login steps and agent enrolment: their credential is in the body
            body = assert_problem(r, 422, "invalid_request")
            assert body["errors"], body


def test_every_api_route_refuses_unknown_ids_and_empty_bodies_with_a_problem(
    client, app, db, state
) -> None:
    org = make_org(db, "Doktor AS", receives=True, gives=True)
    admin = make_user(db, state, org, "admin", admin=True, technician=True)
    db.commit()
    api = Api(client, admin)
    asked = 0
    for method, route in _api_routes(app):
        if "{" not in route.path and not _has_body(route):
            continue  # nothing to get wrong: a list, or an action on oneself (logout)
        r = _call(client, method, route, api.headers)
        asked += 1
        if _has_body(route) and r.status_code == 422:
            body = assert_problem(r, 422)
            assert body["reason"] == "invalid_request" or "errors" not in body
            continue
        # No object has a random id; one the role may not see at all may be a 403.
        assert r.status_code in (403, 404, 409, 422), (method, route.path, r.text)
        assert_problem(r, r.status_code)
    assert asked > 20


def test_a_portal_rule_refusal_names_its_reason(client, db, state) -> None:
    org = make_org(db)
    admin = make_user(db, state, org, "admin", admin=True)
    db.commit()
    api = Api(client, admin)
    assert api.post("/groups", {"name": "Resepsjon"}).status_code == 201
    body = assert_problem(api.post("/groups", {"name": "Resepsjon"}), 409, "group.name_taken")
    assert body["title"] == "Conflict"
    assert body["detail"] == Translator("en")("group.name_taken")
    # Another organisation's object, and none at all, are answered alike.
    missing = assert_problem(api.get(f"/groups/{uuid.uuid4()}"), 404, "no_such_group")
    assert missing["detail"] == Translator("en")("problem.detail.404")


def test_a_malformed_request_lists_what_is_wrong_and_never_echoes_it(client) -> None:
    secret = "my very secret password"
    r = client.post("/api/v1/auth/login", json={"username": ["x"], "password": secret})
    body = assert_problem(r, 422, "invalid_request")
    assert body["errors"] == [
        {"loc": ["body", "username"], "msg": body["errors"][0]["msg"], "type": "string_type"}
    ]
    assert all(set(e) == {"loc", "msg", "type"} for e in body["errors"])
    assert secret not in r.text and "'x'" not in r.text


def test_a_login_refusal_tells_no_more_than_the_page(client, db, state) -> None:
    org = make_org(db)
    make_user(db, state, org, "tekniker")
    db.commit()
    for _ in range(30):
        r = client.post("/api/v1/auth/login", json={"username": "tekniker", "password": "nope"})
        if r.status_code != 401:
            break
        body = assert_problem(r, 401, "login.bad_credentials")
        assert body["detail"] == Translator("en")("login.bad_credentials")
    body = assert_problem(r, 429, "login.locked")
    assert int(r.headers["retry-after"]) >= 1
    assert "min" in body["detail"]
    # Nobody-here is answered exactly as a wrong password (the audit log tells them apart).
    r = client.post("/api/v1/auth/login", json={"username": "nobody-here", "password": "nope"})
    assert_problem(r, 401, "login.bad_credentials")


def test_unknown_routes_and_methods_are_problems_on_the_api_and_pages_elsewhere(
    client,
) -> None:
    assert_problem(client.get("/api/v1/no-such-thing"), 404, "not_found")
    assert_problem(client.put("/api/v1/machines", headers=FORGED), 405, "method_not_allowed")
    page = client.get("/no-such-page")
    assert page.status_code == 404 and page.headers["content-type"].startswith("text/html")


def test_a_csrf_refusal_on_the_api_is_a_problem_and_is_audited(client, db, state) -> None:
    org = make_org(db)
    admin = make_user(db, state, org, "admin", admin=True)
    db.commit()
    web_login(client, admin)
    r = client.post("/api/v1/groups", json={"name": "Lab"})
    body = assert_problem(r, 403, "csrf_token_missing")
    assert body["detail"] == Translator("en")("problem.detail.csrf")
    db.expire_all()
    event = db.execute(
        select(AuditEvent).where(AuditEvent.action == "security.csrf_refused")
    ).scalar_one()
    assert (event.reason, event.outcome) == ("csrf_token_missing", "denied")


def test_a_refusal_on_a_page_is_the_localised_message_page(client, db, state) -> None:
    org = make_org(db)
    admin = make_user(db, state, org, "admin", admin=True)
    db.commit()
    web_login(client, admin)
    r = client.get(f"/portal/machines/{uuid.uuid4()}")
    assert r.status_code == 404 and r.headers["content-type"].startswith("text/html")
    assert Translator("nb")("error.not_found") in r.text


def test_the_openapi_document_names_the_problem_for_every_refusal(client) -> None:
    doc = client.get("/api/v1/openapi.json").json()
    problem = doc["components"]["schemas"]["Problem"]
    assert set(problem["properties"]) >= SHAPE and "errors" in problem["properties"]
    assert "HTTPValidationError" not in doc["components"]["schemas"]
    operations = [
        (path, op)
        for path, ops in doc["paths"].items()
        if path.startswith("/api/v1/")
        for op in ops.values()
    ]
    assert len(operations) > 40
    for path, op in operations:
        for status in REFUSAL_STATUSES:
            content = op["responses"][status]["content"]
            assert list(content) == ["application/problem+json"], (path, status)
            assert content["application/problem+json"]["schema"] == {
                "$ref": "#/components/schemas/Problem"
            }
