"""Nothing crosses organisations: for every kind of object, another organisation's id
answers exactly like an id that does not exist, for reading and for writing, and a
write attempt changes nothing (and is audited)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import pytest
from sqlalchemy import select

from fjernhjelp.audit.models import AuditEvent
from fjernhjelp.auth.models import User
from fjernhjelp.portal import agreements, grants, groups, notifications, terms
from fjernhjelp.portal.models import Agreement, Grant, MachineGroup, Notification, OrgKind
from tests.helpers import Account, make_org, make_user
from tests.portal.web import Api, browser, form_post
from tests.portal.world import ATTENDED, World, build_world


@dataclass
class Two:
    """The GP office of the world, and a dentist and a rival vendor next door."""

    world: World
    dentist_admin: Account
    rival_admin: Account
    rival_tech: Account
    note: Notification


@pytest.fixture
def two(db, state) -> Two:
    world = build_world(db, state)
    dentist = make_org(db, "Tannlegen")
    dentist_admin = make_user(db, state, dentist, "tann-admin", admin=True, technician=False)
    groups.ensure_default(db, dentist, world.caller(world.operator).actor)
    rival = make_org(db, "Konkurrent AS", kind=OrgKind.VENDOR, receives=False, gives=True)
    rival_admin = make_user(db, state, rival, "rival-admin", admin=True, technician=False)
    rival_tech = make_user(db, state, rival, "rival-tech")
    db.commit()
    terms.accept(db, world.caller(dentist_admin), "receiving")
    terms.accept(db, world.caller(rival_admin), "giving")
    note = notifications.notify(db, world.gp.id, "grant_revoked", customer="x", group="y")
    db.commit()
    return Two(world, dentist_admin, rival_admin, rival_tech, note)


def _same_as_missing(api: Api, method: str, template: str, real: object, body=None) -> None:  # type: ignore[no-untyped-def]
    def call(some_id: object):  # type: ignore[no-untyped-def]
        path = template.format(id=some_id)
        if method == "get":
            return api.get(path)
        if method == "delete":
            return api.delete(path)
        return getattr(api, method)(path, body)

    foreign, missing = call(real), call(uuid.uuid4())
    assert foreign.status_code == 404, (template, foreign.text)
    # The problem's "instance" is the path asked for, so it names the id; the rest is equal.
    said = [{k: v for k, v in r.json().items() if k != "instance"} for r in (foreign, missing)]
    assert (foreign.status_code, said[0]) == (missing.status_code, said[1])


def test_another_customers_objects_over_the_api(client, two: Two) -> None:
    w = two.world
    intruder = Api(client, two.dentist_admin)
    reads = [
        ("/groups/{id}", w.group.id),
        ("/agreements/{id}", w.agreement.id),
        ("/grants/{id}", w.grant.id),
        ("/accounts/{id}", w.gp_admin.user.id),
        ("/organisations/{id}", w.gp.id),
        ("/organisations/{id}/accounts", w.gp.id),
    ]
    for template, real in reads:
        _same_as_missing(intruder, "get", template, real)
    writes = [
        ("patch", "/groups/{id}", w.group.id, {"name": "Mine nå"}),
        ("delete", "/groups/{id}", w.group.id, None),
        ("post", "/agreements/{id}/revoke", w.agreement.id, None),
        ("put", "/grants/{id}", w.grant.id, {"permissions": ["view"]}),
        ("post", "/grants/{id}/revoke", w.grant.id, None),
        ("put", "/accounts/{id}/admin", w.gp_admin.user.id, {"value": False}),
        ("post", "/accounts/{id}/deactivate", w.gp_admin.user.id, None),
        ("post", "/accounts/{id}/enrolment-link", w.gp_admin.user.id, None),
        ("post", "/notifications/{id}/dismiss", two.note.id, None),
    ]
    for method, template, real, body in writes:
        _same_as_missing(intruder, method, template, real, body)
    # Granting a vendor access to someone else's group, or under someone else's agreement.
    for field, real in (("group_id", w.group.id), ("agreement_id", w.agreement.id)):
        own = {
            "group_id": str(uuid.uuid4()),
            "agreement_id": str(uuid.uuid4()),
            "permissions": ["view"],
        }
        foreign = intruder.post("/grants", {**own, field: str(real)})
        missing = intruder.post("/grants", own)
        assert foreign.status_code == missing.status_code == 404
        assert foreign.json() == missing.json()
    # Nothing changed.
    db = w.db
    db.rollback()
    db.expire_all()
    assert db.get(MachineGroup, w.group.id).name == "Standard"
    assert db.get(Agreement, w.agreement.id).status == "active"
    grant = db.get(Grant, w.grant.id)
    assert grant.status == "active" and grant.permissions == ATTENDED
    admin = db.get(User, w.gp_admin.user.id)
    assert admin.is_admin and admin.status == "active"
    assert db.get(Notification, two.note.id).dismissed_at is None
    # Each write attempt left a denied event, naming only the intruder's organisation.
    denied = (
        db.execute(
            select(AuditEvent).where(
                AuditEvent.actor_name == "tann-admin", AuditEvent.outcome == "denied"
            )
        )
        .scalars()
        .all()
    )
    assert len(denied) >= len(writes) * 2
    assert {e.reason for e in denied} == {"not_found"}
    assert {e.customer_org_id for e in denied} == {two.dentist_admin.user.organisation_id}


def test_another_organisations_audit_is_not_shown(client, two: Two) -> None:
    w = two.world
    seen = Api(client, two.dentist_admin).get("/audit/events", params={"limit": 1000}).json()
    mine = {two.dentist_admin.user.organisation_id}
    for event in seen["events"]:
        orgs = {event["actor_org_id"], event["customer_org_id"]} - {None}
        assert orgs & {str(o) for o in mine}, event
    assert not any(e["action"] == "grant.created" for e in seen["events"])
    # And the GP admin does see its own grant in its audit log.
    gp_events = Api(client, w.gp_admin).get("/audit/events", params={"limit": 1000}).json()
    assert any(e["action"] == "grant.created" for e in gp_events["events"])


def test_a_vendor_never_sees_another_vendors_grants(client, two: Two) -> None:
    w = two.world
    rival = Api(client, two.rival_admin)
    assert rival.get("/grants/received").json() == []
    assert rival.get("/agreements/received").json() == []
    _same_as_missing(rival, "get", "/grants/{id}", w.grant.id)
    _same_as_missing(rival, "get", "/agreements/{id}", w.agreement.id)
    assert Api(client, two.rival_tech).get("/grants/received").json() == []
    # The GP office cannot list the staff of a vendor it has no agreement with.
    gp = Api(client, w.gp_admin)
    rival_org = two.rival_admin.user.organisation_id
    _same_as_missing(gp, "get", "/vendors/{id}/technicians", rival_org)


def test_a_vendor_serving_two_customers_sees_them_apart(client, two: Two) -> None:
    w = two.world
    dentist_agreement = agreements.record(
        w.db,
        w.caller(two.dentist_admin),
        agreements.AgreementSpec(
            vendor_org_id=w.vendor.id,
            kind="remote_support",
            reference="Tannlegeavtalen",
            valid_from=w.state.now(),
            valid_until=None,
        ),
    )
    dentist_group = groups.list_own(w.db, w.caller(two.dentist_admin))[0]
    grants.create(
        w.db,
        w.caller(two.dentist_admin),
        group_id=dentist_group.id,
        agreement_id=dentist_agreement.id,
        wanted=grants.GrantTerms(permissions=frozenset(ATTENDED)),
    )
    w.db.commit()
    blocks = Api(client, w.vendor_admin).get("/grants/received").json()
    assert [b["customer"]["name"] for b in blocks] == ["Legekontoret Fjordbyen", "Tannlegen"]
    for block in blocks:
        assert {g["customer"]["name"] for g in block["grants"]} == {block["customer"]["name"]}
    with browser(client, w.vendor_admin) as page:
        html = page.get("/portal/received").text
        assert html.count('data-testid="customer-') == 2


def test_another_customers_objects_through_the_pages(client, two: Two) -> None:
    w = two.world
    with browser(client, two.dentist_admin) as page:
        for template, real in (
            ("/portal/grants/{id}", w.grant.id),
            ("/portal/agreements/{id}", w.agreement.id),
            ("/portal/grants/new?agreement={id}", w.agreement.id),
        ):
            other = uuid.uuid4()
            foreign = page.get(template.format(id=real))
            missing = page.get(template.format(id=other))
            assert foreign.status_code == missing.status_code == 404
            # The page links back to its own path (language switch); apart from that
            # the two answers are the same, byte for byte.
            assert foreign.text.replace(str(real), "ID") == missing.text.replace(str(other), "ID")
        for template, real in (
            ("/portal/grants/{id}/revoke", w.grant.id),
            ("/portal/agreements/{id}/revoke", w.agreement.id),
            ("/portal/groups/{id}/delete", w.group.id),
            ("/portal/people/{id}/deactivate", w.gp_admin.user.id),
            ("/portal/people/{id}/admin", w.gp_admin.user.id),
        ):
            other = uuid.uuid4()
            foreign = form_post(page, template.format(id=real), {})
            missing = form_post(page, template.format(id=other), {})
            assert foreign.status_code == missing.status_code == 404, template
            assert foreign.text.replace(str(real), "ID") == missing.text.replace(str(other), "ID")
    w.db.rollback()
    w.db.expire_all()
    assert w.db.get(Grant, w.grant.id).status == "active"
    assert w.db.get(MachineGroup, w.group.id) is not None
    assert w.db.get(User, w.gp_admin.user.id).is_admin
