"""CSRF fails closed: every unsafe method of every route is checked unless its endpoint
is explicitly exempt, and the exemptions are listed here, with their reasons."""

from __future__ import annotations

from fastapi.routing import APIRoute, APIWebSocketRoute
from sqlalchemy import select
from starlette.routing import Mount

from fjernhjelp.audit.models import AuditEvent
from fjernhjelp.portal.models.group import MachineGroup
from fjernhjelp.server.deps import UNSAFE_METHODS, csrf_protect
from fjernhjelp.server.security import csrf_exemption
from tests.portal.web import browser
from tests.portal.world import build_world

try:  # FastAPI 0.16x keeps included routers lazily; older versions list APIRoutes
    from fastapi.routing import iter_route_contexts
except ImportError:  # pragma: no cover
    iter_route_contexts = None  # type: ignore[assignment]

# Each takes no ambient credential (no cookie is read): what authenticates it is in the
# body. Adding an exemption means adding it here, where a reviewer sees it.
EXEMPT = {
    ("POST", "/api/v1/auth/login"),
    ("POST", "/api/v1/auth/factor"),
    ("POST", "/api/v1/agents/enrol"),
    ("POST", "/api/v1/support/join"),
}


def _routes(app):  # type: ignore[no-untyped-def]
    return list(iter_route_contexts(app.routes)) if iter_route_contexts else list(app.routes)


def _calls(dependant) -> set:  # type: ignore[no-untyped-def]
    found = set()
    for sub in dependant.dependencies:
        found.add(sub.call)
        found |= _calls(sub)
    return found


def test_every_unsafe_route_is_checked_or_listed_as_exempt(app) -> None:
    checked, exempt, other = [], {}, []
    for route in _routes(app):
        original = getattr(route, "original_route", route)
        if isinstance(original, APIWebSocketRoute):
            continue  # no cookie is read there (see deps.csrf_protect)
        if isinstance(original, Mount):
            continue  # static files: GET and HEAD only (checked below)
        unsafe = set(getattr(route, "methods", None) or ()) & UNSAFE_METHODS
        if not unsafe:
            continue
        if not isinstance(original, APIRoute):
            other.append(route.path)
            continue
        assert csrf_protect in _calls(route.dependant), route.path
        for method in unsafe:
            reason = csrf_exemption(route.endpoint)
            if reason:
                exempt[(method, route.path)] = reason
            else:
                checked.append((method, route.path))
    assert other == []  # nothing outside FastAPI's dependency system takes unsafe methods
    assert set(exempt) == EXEMPT, exempt
    assert all(len(reason) > 20 for reason in exempt.values())
    assert len(checked) > 50  # the walk did see the portal and the API


def test_static_mounts_take_no_unsafe_method(client) -> None:
    r = client.post("/static/x.js", data={"a": "b"})
    assert r.status_code in (404, 405)


def test_a_route_added_later_is_checked_without_saying_so(app, client, db, state) -> None:
    world = build_world(db, state)
    db.commit()
    touched: list[str] = []

    @app.post("/api/v1/new-feature")
    def new_feature() -> dict[str, str]:  # declares nothing about CSRF
        touched.append("ran")
        return {}

    with browser(client, world.gp_admin) as page:
        r = page.post("/api/v1/new-feature", json={})
        assert r.status_code == 403
    assert touched == []
    db.rollback()
    event = db.execute(
        select(AuditEvent)
        .where(AuditEvent.action == "security.csrf_refused")
        .order_by(AuditEvent.seq.desc())
    ).scalar()
    assert event is not None and event.actor_name == "gp-admin"
    assert event.reason == "csrf_token_missing"


def test_cross_site_posts_with_a_logged_in_browser_are_refused(client, db, state) -> None:
    """The victim is logged in; a page on another site makes their browser post."""
    world = build_world(db, state)
    db.commit()
    groups_before = db.execute(select(MachineGroup.name)).scalars().all()
    attacks = [
        ("/api/v1/groups", {"json": {"name": "Angriperens gruppe"}}),
        ("/api/v1/auth/logout", {}),
        ("/portal/groups", {"data": {"name": "Angriperens gruppe"}}),
        ("/logout", {}),
    ]
    with browser(client, world.gp_admin) as page:
        for path, body in attacks:
            r = page.post(path, headers={"Sec-Fetch-Site": "cross-site"}, **body)
            assert r.status_code == 403, path
        # Still logged in, and nothing was made.
        assert page.get("/portal").status_code == 200
    db.rollback()
    assert db.execute(select(MachineGroup.name)).scalars().all() == groups_before
    refused = (
        db.execute(select(AuditEvent).where(AuditEvent.action == "security.csrf_refused"))
        .scalars()
        .all()
    )
    assert [(e.actor_name, e.reason) for e in refused] == [
        ("gp-admin", "cross_site_request")
    ] * len(attacks)
    assert {e.details for e in refused} >= {'{"method":"POST","path":"/api/v1/groups"}'}


def test_bearer_calls_and_exempt_logins_still_work(client, db, state) -> None:
    from tests.portal.web import Api

    world = build_world(db, state)
    db.commit()
    api = Api(client, world.gp_admin)  # the exempt login and factor endpoints
    r = api.post("/groups", json={"name": "Resepsjonen"})
    assert r.status_code == 201, r.text
