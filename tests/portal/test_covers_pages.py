"""What an agreement covers, where people meet it: the recording form (a required choice,
nothing preselected), the lists and the agreement's page, the grant pages (which neither
offer nor accept a Support-only agreement) and the JSON API. Mostly from the denied side."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta

from sqlalchemy import func, select

from fjernhjelp.audit.models import AuditEvent
from fjernhjelp.i18n import Translator
from fjernhjelp.portal.models import Agreement, Grant, OrgKind
from tests.helpers import csrf_from, make_org, make_user
from tests.portal.web import Api, browser, form_post
from tests.portal.world import World
from tests.server.test_problems import assert_problem

NB = Translator("nb")
EN = Translator("en")
FORM = {
    "kind": "remote_support",
    "reference": "Supportavtale 2026",
    "valid_from": "2020-01-01",
    "valid_until": "2099-12-31",
}


def _count(world: World, model: type) -> int:
    world.db.rollback()  # end the test's own transaction, to see what the server committed
    return world.db.execute(select(func.count()).select_from(model)).scalar_one()


def _last_event(world: World) -> AuditEvent:
    world.db.rollback()
    return world.db.execute(
        select(AuditEvent).order_by(AuditEvent.seq.desc()).limit(1)
    ).scalar_one()


def _radios(html: str) -> list[str]:
    return re.findall(r'<input type="radio" name="covers"[^>]*>', html)


def test_the_choice_is_required_and_nothing_is_chosen_for_the_admin(client, world: World) -> None:
    before = _count(world, Agreement)
    with browser(client, world.gp_admin) as page:
        html = page.get("/portal/agreements").text
        radios = _radios(html)
        assert [re.search(r'value="(\w+)"', r).group(1) for r in radios] == [  # type: ignore[union-attr]
            "support",
            "access",
            "both",
        ]
        assert all("required" in r and "checked" not in r for r in radios)
        assert NB("agreement.covers_choices.support") in html
        # The GP office may receive Access: no word about it being off.
        assert NB("agreement.access_not_enabled") not in html
        form = {**FORM, "vendor_org_id": str(world.vendor.id)}
        for sent in ({}, {"covers": ""}, {"covers": "everything"}):
            r = form_post(page, "/portal/agreements", {**form, **sent})
            assert r.status_code == 422, sent
            assert NB("agreement.bad_covers") in r.text
            assert 'value="Supportavtale 2026"' in r.text  # what was typed is kept
            assert all("checked" not in radio for radio in _radios(r.text))
            event = _last_event(world)
            assert (event.action, event.outcome, event.reason) == (
                "agreement.recorded",
                "denied",
                "agreement.bad_covers",
            )
        assert _count(world, Agreement) == before
        # A refusal for another field keeps the coverage chosen.
        r = form_post(page, "/portal/agreements", {**form, "covers": "support", "reference": " "})
        assert r.status_code == 422 and NB("agreement.bad_reference") in r.text
        assert [r for r in _radios(r.text) if "checked" in r] == [
            next(r for r in _radios(r.text) if 'value="support"' in r)
        ]


def test_a_support_only_agreement_is_shown_as_such_and_gives_no_access(
    client, world: World
) -> None:
    with browser(client, world.gp_admin) as page:
        r = form_post(
            page,
            "/portal/agreements",
            {**FORM, "vendor_org_id": str(world.vendor.id), "covers": "support"},
        )
        assert r.status_code == 303, r.text
        path = r.headers["location"].split("?")[0]
        agreement_id = path.rsplit("/", 1)[1]
        detail = page.get(path).text
        assert re.search(
            r'data-testid="agreement-covers">' + re.escape(NB("agreement.covers_choices.support")),
            detail,
        )
        assert NB("agreement.support_only_no_grants") in detail
        assert f"/portal/grants/new?agreement={agreement_id}" not in detail
        # The world's agreement (both) still offers giving access, on its page and in the list.
        assert (
            f"/portal/grants/new?agreement={world.agreement.id}"
            in page.get(f"/portal/agreements/{world.agreement.id}").text
        )
        listing = page.get("/portal/agreements").text
        assert NB("agreement.covers_choices.support") in listing
        assert NB("agreement.covers_choices.both") in listing
        grants_page = page.get("/portal/grants").text
        assert f"/portal/grants/new?agreement={world.agreement.id}" in grants_page
        assert f"/portal/grants/new?agreement={agreement_id}" not in grants_page
    world.db.rollback()
    assert world.db.get(Agreement, uuid.UUID(agreement_id)).covers == "support"
    with browser(client, world.vendor_admin) as page:
        page.cookies.set("fjh_lang", "en")
        received = page.get("/portal/agreements").text
        block = received.split('data-testid="agreements-received"', 1)[1]
        assert EN("agreement.covers_choices.support") in block
        assert EN("agreement.covers_choices.both") in block
        detail = page.get(f"/portal/agreements/{agreement_id}").text
        assert EN("agreement.covers_choices.support") in detail


def test_the_grant_pages_refuse_a_support_only_agreement(client, world: World) -> None:
    with browser(client, world.gp_admin) as page:
        r = form_post(
            page,
            "/portal/agreements",
            {**FORM, "vendor_org_id": str(world.vendor.id), "covers": "support"},
        )
        agreement_id = r.headers["location"].split("?")[0].rsplit("/", 1)[1]
        # A typed or stale link says why, and offers no form that must fail.
        form = page.get(f"/portal/grants/new?agreement={agreement_id}")
        assert form.status_code == 422
        assert NB("grant.agreement_support_only") in form.text
        assert 'data-testid="grant-form"' not in form.text
        # A forged post is refused by the service, audited, and leaves nothing.
        before = _count(world, Grant)
        token = csrf_from(page.get("/portal/grants").text)
        r = page.post(
            "/portal/grants",
            data={
                "agreement_id": agreement_id,
                "group_id": str(world.group.id),
                "permissions": ["view"],
                "consent": "required",
                "csrf_token": token,
            },
        )
        assert r.status_code == 422
        assert NB("grant.agreement_support_only") in r.text
        assert 'data-testid="grant-form"' not in r.text
    assert _count(world, Grant) == before
    event = _last_event(world)
    assert (event.action, event.outcome, event.reason) == (
        "grant.created",
        "denied",
        "grant.agreement_support_only",
    )
    assert event.actor_name == "gp-admin" and event.customer_org_id == world.gp.id


def test_a_municipality_is_told_that_access_is_not_on_yet(client, world: World) -> None:
    municipality = make_org(world.db, "Fjordbyen kommune", kind=OrgKind.MUNICIPALITY)
    admin = make_user(
        world.db, world.state, municipality, "kommune-admin", admin=True, technician=False
    )
    world.db.commit()
    assert municipality.access_enabled is False
    with browser(client, admin) as page:
        html = page.get("/portal/agreements").text
        assert NB("agreement.access_not_enabled") in html
        # Nothing is preselected for it either: Support only is the admin's choice.
        assert all("checked" not in r for r in _radios(html))


def _spec(world: World, **extra: object) -> dict[str, object]:
    now = world.state.now()
    return {
        "vendor_org_id": str(world.vendor.id),
        "kind": "remote_support",
        "reference": "API-avtale",
        "valid_from": (now - timedelta(days=1)).isoformat(),
        "valid_until": (now + timedelta(days=90)).isoformat(),
        **extra,
    }


def test_the_api_takes_and_tells_the_coverage(client, world: World) -> None:
    gp = Api(client, world.gp_admin)
    r = gp.post("/agreements", _spec(world, reference="Eldre klient"))
    assert r.status_code == 201, r.text
    assert r.json()["covers"] == "access"  # left out: what agreements meant before Support
    r = gp.post("/agreements", _spec(world, reference="Bare Support", covers="support"))
    assert r.status_code == 201, r.text
    support_only = r.json()
    assert support_only["covers"] == "support"
    assert gp.get(f"/agreements/{support_only['id']}").json()["covers"] == "support"
    mine = {a["reference"]: a["covers"] for a in gp.get("/agreements").json()}
    assert mine == {"Avtale 2026-17": "both", "Eldre klient": "access", "Bare Support": "support"}
    vendor = Api(client, world.vendor_admin)
    received = {a["reference"]: a["covers"] for a in vendor.get("/agreements/received").json()}
    assert received == mine
    schema = client.get("/api/v1/openapi.json").json()["components"]["schemas"]
    field = schema["AgreementIn"]["properties"]["covers"]
    assert field["default"] == "access" and "Defaults to access" in field["description"]
    assert "covers" in schema["AgreementOut"]["required"]


def test_the_api_refuses_a_bad_coverage_and_a_grant_under_support_only(
    client, world: World
) -> None:
    gp = Api(client, world.gp_admin)
    before = _count(world, Agreement)
    body = assert_problem(
        gp.post("/agreements", _spec(world, covers="everything")), 422, "invalid_request"
    )
    assert [e["loc"] for e in body["errors"]] == [["body", "covers"]]
    assert "everything" not in str(body)  # the value sent is never echoed
    assert _count(world, Agreement) == before

    r = gp.post("/agreements", _spec(world, reference="Bare Support", covers="support"))
    support_only = r.json()["id"]
    before = _count(world, Grant)
    body = assert_problem(
        gp.post(
            "/grants",
            {
                "group_id": str(world.group.id),
                "agreement_id": support_only,
                "permissions": ["view", "control"],
            },
        ),
        422,
        "grant.agreement_support_only",
    )
    assert body["detail"] == EN("grant.agreement_support_only")
    assert _count(world, Grant) == before
    event = _last_event(world)
    assert (event.action, event.outcome, event.reason) == (
        "grant.created",
        "denied",
        "grant.agreement_support_only",
    )
