"""The portal's pages: each role's pages in both languages, and the forms end to end
(CSRF required, refusals shown in plain words, every change audited)."""

from __future__ import annotations

import json
import re

import pytest
from sqlalchemy import select

from fjernhjelp.audit.models import AuditEvent
from fjernhjelp.i18n import Translator
from fjernhjelp.portal.models import Grant, GrantStatus, Organisation
from tests.helpers import csrf_from, valid_orgnr
from tests.portal.web import browser, form_post
from tests.portal.world import World, build_world

PAGES = {
    "operator": ["/portal", "/portal/ops/organisations", "/portal/ops/terms", "/portal/people"],
    "gp_admin": [
        "/portal",
        "/portal/terms",
        "/portal/grants",
        "/portal/agreements",
        "/portal/groups",
        "/portal/people",
        "/portal/machines",
        "/portal/packages",
    ],
    "vendor_admin": [
        "/portal",
        "/portal/terms",
        "/portal/received",
        "/portal/agreements",
        "/portal/people",
    ],
}


@pytest.mark.parametrize("lang", ["nb", "en"])
def test_every_page_renders_for_its_role_in_both_languages(client, world: World, lang) -> None:
    t = Translator(lang)
    for role, paths in PAGES.items():
        with browser(client, getattr(world, role)) as page:
            page.cookies.set("fjh_lang", lang)
            for path in paths:
                r = page.get(path)
                assert r.status_code == 200, (role, path, r.text[:300])
                assert f'<html lang="{lang}">' in r.text
                # No message key may leak through untranslated.
                leaked = re.findall(
                    r">\s*((?:portal|grant|agreement|terms|people|package|machine)\.[a-z_.]+)\s*<",
                    r.text,
                )
                assert leaked == [], (path, leaked)
            if role == "gp_admin":
                html = page.get("/portal/grants").text
                assert t("grant.title") in html and world.vendor.name in html
                detail = page.get(f"/portal/grants/{world.grant.id}").text
                assert t("permission.control") in detail and t("grant.revoke") in detail


def test_roles_are_kept_to_their_pages(client, world: World) -> None:
    with browser(client, world.tech) as page:
        for path in ("/portal", "/portal/grants", "/portal/people", "/portal/ops/organisations"):
            assert page.get(path).status_code == 403, path
    with browser(client, world.gp_admin) as page:
        assert page.get("/portal/ops/organisations").status_code == 403
        assert page.get("/portal/received").status_code == 403
    with browser(client, world.vendor_admin) as page:
        assert page.get("/portal/grants").status_code == 403
        assert page.get("/portal/groups").status_code == 403


def test_a_form_without_its_csrf_token_is_refused_and_audited(client, world: World) -> None:
    with browser(client, world.gp_admin) as page:
        r = page.post(f"/portal/grants/{world.grant.id}/revoke", data={})
        assert r.status_code == 403
    world.db.rollback()
    world.db.expire_all()
    assert world.db.get(Grant, world.grant.id).status == GrantStatus.ACTIVE
    event = world.db.execute(
        select(AuditEvent).where(AuditEvent.action == "security.csrf_refused")
    ).scalar_one()
    assert event.actor_name == "gp-admin"


def test_operator_registers_an_organisation_and_appoints_its_admin(client, db, state) -> None:
    world = build_world(db, state, agreement=False)
    with browser(client, world.operator) as page:
        r = form_post(
            page,
            "/portal/ops/organisations",
            {"orgnr": "123456789", "name": "Feil AS", "kind": "dentist", "receives_help": "true"},
        )
        assert r.status_code == 422
        assert Translator("nb")("organisation.bad_orgnr") in r.text
        assert 'value="Feil AS"' in r.text  # what was typed is kept
        number = valid_orgnr()
        r = form_post(
            page,
            "/portal/ops/organisations",
            {
                "orgnr": number,
                "name": "Fjordbyen kommune",
                "kind": "municipality",
                "receives_help": "true",
            },
        )
        assert r.status_code == 303
        org_path = r.headers["location"].split("?")[0]
        detail = page.get(org_path).text
        assert "Fjordbyen kommune" in detail
        r = form_post(
            page,
            org_path + "/admins",
            {"display_name": "Kari Kommune", "username": "kari", "email": "kari@example.no"},
            page=org_path,
        )
        assert r.status_code == 200
        link = re.search(r'data-testid="enrolment-link">([^<]+)<', r.text).group(1)
        assert "/enroll/" in link
        # Municipalities start with Access off; the operator turns it on.
        org = db.execute(select(Organisation).where(Organisation.orgnr == number)).scalar_one()
        assert org.access_enabled is False
        r = form_post(
            page,
            org_path + "/policy",
            {"receives_help": "true", "access_enabled": "true"},
            page=org_path,
        )
        assert r.status_code == 303
    db.rollback()
    db.expire_all()
    assert db.get(Organisation, org.id).access_enabled is True
    event = db.execute(
        select(AuditEvent).where(AuditEvent.action == "organisation.policy_changed")
    ).scalar_one()
    details = json.loads(event.details)
    assert details["before"]["access_enabled"] is False and details["after"]["access_enabled"]


def test_gp_admin_records_an_agreement_and_gives_access_through_forms(client, db, state) -> None:
    world = build_world(db, state, agreement=False)
    t = Translator("nb")
    with browser(client, world.gp_admin) as page:
        base = {
            "vendor_org_id": str(world.vendor.id),
            "kind": "remote_support",
            "covers": "access",
            "reference": "Serviceavtale 2026",
            "valid_from": "2020-01-01",
            "valid_until": "2099-12-31",
        }
        r = form_post(page, "/portal/agreements", {**base, "allows_preapproved": "true"})
        assert r.status_code == 422 and t("agreement.clause_required") in r.text
        r = form_post(page, "/portal/agreements", {**base, "valid_until": "31.12.2099"})
        assert r.status_code == 422 and t("agreement.bad_date") in r.text
        r = form_post(page, "/portal/agreements", base)
        assert r.status_code == 303
        agreement_path = r.headers["location"].split("?")[0]
        agreement_id = agreement_path.rsplit("/", 1)[1]
        form = page.get(f"/portal/grants/new?agreement={agreement_id}")
        assert form.status_code == 200
        # The clipboard is a permission of its own, offered with what it needs.
        assert 'value="clipboard"' in form.text and t("permission.clipboard") in form.text
        # Pre-approval is not even offered where the agreement does not allow it ...
        assert 'value="preapproved"' not in form.text
        grant = {
            "agreement_id": agreement_id,
            "group_id": str(world.group.id),
            "permissions": ["view", "control"],
            "consent": "preapproved",
        }
        # ... and refused if sent anyway.
        r = page.post("/portal/grants", data={**grant, "csrf_token": csrf_from(form.text)})
        assert r.status_code == 422 and t("grant.preapproval_not_allowed") in r.text
        r = page.post(
            "/portal/grants",
            data={**grant, "consent": "required", "csrf_token": csrf_from(form.text)},
        )
        assert r.status_code == 303
        grant_path = r.headers["location"].split("?")[0]
        overview = page.get("/portal/grants").text
        assert world.vendor.name in overview and t("permission.control") in overview
        # The last day shown is the day typed in, in Norwegian form.
        assert "31.12.2099" in page.get(grant_path).text
        r = form_post(page, grant_path + "/revoke", {}, page=grant_path)
        assert r.status_code == 303
        assert t("status.revoked") in page.get(grant_path).text
    with browser(client, world.vendor_admin) as page:
        home = page.get("/portal").text
        assert "har trukket tilbake tilgangen" in home


def test_vendor_admin_invites_a_technician_who_gets_a_one_time_link(client, world: World) -> None:
    with browser(client, world.vendor_admin) as page:
        r = form_post(
            page,
            "/portal/people",
            {
                "display_name": "Per Tekniker",
                "username": "per",
                "email": "per@example.no",
                "technician": "true",
            },
        )
        assert r.status_code == 200
        link = re.search(r'data-testid="enrolment-link">([^<]+)<', r.text).group(1)
        path = link.split("8080", 1)[1]
        people = page.get("/portal/people").text
        assert "per" in people and Translator("nb")("status.pending") in people
    assert client.get(path).status_code == 200
