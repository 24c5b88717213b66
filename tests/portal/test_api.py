"""The portal's JSON API: the same rules as the pages, on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import func, select

from fjernhjelp.audit.models import AuditEvent
from fjernhjelp.portal.models import Grant
from tests.helpers import valid_orgnr
from tests.portal.web import Api
from tests.portal.world import CLAUSE, World, build_world


def test_the_whole_story_over_the_api(client, db, state) -> None:
    world = build_world(db, state, agreement=False)
    operator = Api(client, world.operator)
    r = operator.post(
        "/organisations",
        {
            "orgnr": valid_orgnr(),
            "name": "Tannlegene på torget",
            "kind": "dentist",
            "receives_help": True,
        },
    )
    assert r.status_code == 201, r.text
    dentist = r.json()
    r = operator.post(
        f"/organisations/{dentist['id']}/admins",
        {"username": "tann-admin", "email": "t@example.no", "display_name": "Tone Tann"},
    )
    assert r.status_code == 201
    assert "/enroll/" in r.json()["enrolment_link"]
    assert r.json()["account"]["status"] == "pending"

    gp = Api(client, world.gp_admin)
    (group,) = gp.get("/groups").json()
    vendors = gp.get("/vendors").json()
    assert [v["name"] for v in vendors] == ["Journalleverandør AS"]
    now = state.now()
    r = gp.post(
        "/agreements",
        {
            "vendor_org_id": vendors[0]["id"],
            "kind": "remote_support",
            "reference": "Avtale 7",
            "valid_from": (now - timedelta(days=1)).isoformat(),
            "valid_until": (now + timedelta(days=90)).isoformat(),
        },
    )
    assert r.status_code == 201, r.text
    agreement = r.json()
    assert agreement["status"] == "active"
    techs = gp.get(f"/vendors/{vendors[0]['id']}/technicians").json()
    r = gp.post(
        "/grants",
        {
            "group_id": group["id"],
            "agreement_id": agreement["id"],
            "permissions": ["view", "control"],
            "technician_ids": [techs[0]["id"]],
        },
    )
    assert r.status_code == 201, r.text
    grant = r.json()
    assert grant["consent_required"] is True and grant["expires_at"] == agreement["valid_until"]

    overview = gp.get("/access-overview").json()
    assert overview[0]["grants"][0]["vendor"]["name"] == "Journalleverandør AS"

    vendor = Api(client, world.vendor_admin)
    (block,) = vendor.get("/grants/received").json()
    assert block["customer"]["name"] == world.gp.name
    assert [g["id"] for g in block["grants"]] == [grant["id"]]
    tech = Api(client, world.tech)
    assert len(tech.get("/grants/received").json()) == 1

    r = gp.post(f"/grants/{grant['id']}/revoke")
    assert r.status_code == 200 and r.json()["status"] == "revoked"
    assert tech.get("/grants/received").json() == []
    notes = vendor.get("/notifications").json()
    assert {"grant_created", "grant_revoked"} <= {n["kind"] for n in notes}


def _refusal(  # type: ignore[no-untyped-def]
    world: World, client, body: dict, status: int, error: str | None, audited: bool = True
) -> None:
    gp = Api(client, world.gp_admin)
    before = world.db.execute(select(func.count()).select_from(Grant)).scalar_one()
    payload = {
        "group_id": str(world.group.id),
        "agreement_id": str(world.agreement.id),
        "permissions": ["view"],
        **body,
    }
    r = gp.post("/grants", payload)
    assert r.status_code == status, r.text
    if error:
        assert r.json()["reason"] == error and r.json()["detail"]
    world.db.rollback()
    assert world.db.execute(select(func.count()).select_from(Grant)).scalar_one() == before
    if not audited:
        return
    event = world.db.execute(
        select(AuditEvent).order_by(AuditEvent.seq.desc()).limit(1)
    ).scalar_one()
    assert (event.action, event.outcome) == ("grant.created", "denied")


def test_grant_refusals(client, db, state) -> None:
    world = build_world(db, state, grant=False)
    # No agreement behind it: the id is unknown (or someone else's) -> 404.
    _refusal(world, client, {"agreement_id": str(uuid.uuid4())}, 404, None)
    _refusal(world, client, {"consent_required": False}, 422, "grant.preapproval_not_allowed")
    late = (world.agreement.valid_until + timedelta(days=1)).isoformat()
    _refusal(world, client, {"expires_at": late}, 422, "grant.expiry_after_agreement")
    _refusal(world, client, {"permissions": ["control"]}, 422, "grant.control_needs_view")
    clipboard = {"permissions": ["view", "clipboard"]}  # a view-only vendor reading the clipboard
    _refusal(world, client, clipboard, 422, "grant.clipboard_needs_control")
    # Not in the schema: refused before any rule runs (FastAPI's 422), nothing to audit.
    _refusal(world, client, {"permissions": ["sudo"]}, 422, None, audited=False)


def test_preapproved_grant_where_the_agreement_allows_it(client, db, state) -> None:
    world = build_world(db, state, agreement=False)
    agreement = world.record_agreement(allows_preapproved=True, preapproved_clause=CLAUSE)
    r = Api(client, world.gp_admin).post(
        "/grants",
        {
            "group_id": str(world.group.id),
            "agreement_id": str(agreement.id),
            "permissions": ["view", "terminal"],
            "consent_required": False,
        },
    )
    assert r.status_code == 201 and r.json()["consent_required"] is False


def test_a_grant_with_control_may_share_the_clipboard(client, db, state) -> None:
    world = build_world(db, state, grant=False)
    r = Api(client, world.gp_admin).post(
        "/grants",
        {
            "group_id": str(world.group.id),
            "agreement_id": str(world.agreement.id),
            "permissions": ["view", "control", "clipboard"],
        },
    )
    assert r.status_code == 201, r.text
    assert r.json()["permissions"] == ["clipboard", "control", "view"]


def test_refusals_are_json_with_an_error_key(client, world: World) -> None:
    gp = Api(client, world.gp_admin)
    r = gp.post("/groups", {"name": "Standard"})
    assert r.status_code == 409 and r.json()["reason"] == "group.name_taken"
    r = gp.post(f"/agreements/{world.agreement.id}/revoke")
    assert r.status_code == 200
    r = gp.post(f"/agreements/{world.agreement.id}/revoke")
    assert r.status_code == 422 and r.json()["reason"] == "agreement.already_ended"


def test_operator_only_actions_are_forbidden_to_admins(client, world: World) -> None:
    gp = Api(client, world.gp_admin)
    r = gp.post(
        "/organisations",
        {"orgnr": valid_orgnr(), "name": "x", "kind": "dentist", "receives_help": True},
    )
    assert r.status_code == 403
    assert gp.post(f"/accounts/{world.tech.user.id}/suspend").status_code == 403
    terms = {"audience": "giving", "title": "x", "body_nb": "y"}
    assert gp.post("/terms", terms).status_code == 403


def test_openapi_describes_the_portal(client) -> None:
    paths = client.get("/api/v1/openapi.json").json()["paths"]
    for path in (
        "/api/v1/organisations",
        "/api/v1/accounts",
        "/api/v1/terms",
        "/api/v1/groups",
        "/api/v1/agreements",
        "/api/v1/grants",
        "/api/v1/grants/received",
        "/api/v1/access-overview",
        "/api/v1/notifications",
    ):
        assert path in paths, path
