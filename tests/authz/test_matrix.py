"""The authorisation matrix: every route × every role × an object of the caller's own side
and of the other side, asked for real (logins, bearer tokens, CSRF tokens, SQLite and
PostgreSQL), compared with the table in tests/authz/table.py, which docs/SECURITY.md
prints. A cell that differs fails; so does a route nobody has written a row for."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.authz import recipes, table
from tests.authz.routes import from_openapi, from_router
from tests.authz.world import ROLES, SCOPES, build

ROOT = Path(__file__).resolve().parents[2]


def unlisted(app: Any, client: TestClient) -> tuple[set[tuple[str, str]], set[str]]:
    """Routes the app serves that the table has no row for (and static mounts it does
    not name). The API's operations come from the OpenAPI document the app serves."""
    document = client.get("/api/v1/openapi.json").json()
    served, mounts = from_router(app)
    api = from_openapi(document)
    assert api <= served, api - served  # the document describes routes that exist
    listed = set(table.EXPECTED) | set(table.ELSEWHERE)
    return (served | api) - listed, mounts - table.STATIC_MOUNTS


def test_every_route_has_a_row(app, client) -> None:
    assert unlisted(app, client) == (set(), set())
    served, mounts = from_router(app)
    assert set(table.EXPECTED) | set(table.ELSEWHERE) == served, "rows for routes that are gone"
    assert mounts == table.STATIC_MOUNTS
    assert set(recipes.ROUTES) == set(table.EXPECTED), "each row needs a recipe"
    for answers, _ in table.EXPECTED.values():
        assert len(table.cells(answers)) == len(ROLES), answers


def test_a_route_added_later_fails_until_its_row_is_written(app, client) -> None:
    @app.get("/api/v1/new-feature")
    def new_feature() -> dict[str, str]:
        return {}

    @app.post("/portal/new-page")
    def new_page() -> dict[str, str]:
        return {}

    missing, _ = unlisted(app, client)
    assert missing == {("GET", "/api/v1/new-feature"), ("POST", "/portal/new-page")}


# The rows in four groups, each one test (in a world of its own): xdist can spread them
# over its workers, and each stays well inside the suite's per-test timeout.
AREA_OF = {
    "people": ("accounts", "people", "organisations"),
    "portal": ("terms", "groups", "vendors", "agreements", "notifications", "received",
               "audit"),
    "access": ("grants", "access-overview", "machines", "sessions", "console", "packages",
               "support-sessions"),
}  # fmt: skip


def _areas() -> dict[str, list[tuple[str, str]]]:
    groups: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for method, path in table.EXPECTED:
        parts = [p for p in path.split("/") if p and p not in ("api", "v1", "portal", "ops")]
        first = parts[0] if parts else ""
        area = next((a for a, firsts in AREA_OF.items() if first in firsts), "public")
        groups[area].append((method, path))
    return dict(groups)


AREAS = _areas()


@pytest.mark.parametrize("area", sorted(AREAS))
def test_the_matrix(area: str, db, state, client) -> None:
    world = build(db, state, client)
    wrong = []
    for method, path in AREAS[area]:
        answers, _ = table.EXPECTED[(method, path)]
        for role, (own, other) in zip(ROLES, table.cells(answers), strict=True):
            for scope, expected in zip(SCOPES, (own, other), strict=True):
                got = recipes.run_cell(world, method, path, role, scope)
                if got != expected:
                    wrong.append(
                        f"{method} {path} as {role} on {scope}: {got}, table says {expected}"
                    )
    assert not wrong, "\n".join(wrong)


def test_the_leak_check_sees_the_other_side(db, state, client) -> None:
    """What the list cells look for is really on the pages of those who may see it: the
    operator's list of organisations names the other customer."""
    world = build(db, state, client)
    page = world.send(world.logins["operator"], "GET", "/portal/ops/organisations").text
    secrets = recipes.secrets_of_the_other_side(world)
    assert secrets["customer name"] in page
    assert {"customer id", "customer name"} <= set(recipes.leaks(world, "customer_admin", page))


def test_security_md_prints_this_table() -> None:
    document = (ROOT / "docs" / "SECURITY.md").read_text()
    assert table.with_table(document) == document, (
        "docs/SECURITY.md's matrix is stale: python -m tests.authz.table --write docs/SECURITY.md"
    )
