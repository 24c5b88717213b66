"""Installer packages in the portal: make one for a group (as the customer's admin or a
vendor's technician whose grant lets it make packages), download it, list it with its
state, revoke it after a confirmation; and the denied side: a group or package of
another customer or of a vendor without a grant answers 404, a form without its CSRF
token 403, nothing changes. (The planted-machine attacks: tests/portal/test_planted.py.)"""

from __future__ import annotations

import base64
import re
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import select

from fjernhjelp.audit.models import AuditEvent
from fjernhjelp.control.package import fingerprint, read_package
from fjernhjelp.i18n import Translator
from fjernhjelp.machines.models import InstallerPackage
from tests.portal.access_world import Site, build_site
from tests.portal.web import browser, form_post

NB = Translator("nb")
EN = Translator("en")
PAGE = "/portal/packages"


@pytest.fixture
def site(db, state) -> Site:
    return build_site(db, state)


def _make(page, group_id: uuid.UUID, **fields: object):  # type: ignore[no-untyped-def]
    data = {"group_id": str(group_id), "lifetime_hours": 24, "max_uses": 2, **fields}
    return form_post(page, PAGE, data, page=PAGE)


def _downloaded(html: str) -> tuple[str, bytes]:
    match = re.search(
        r'href="data:application/json;base64,([A-Za-z0-9+/=]+)" download="([^"]+)"', html
    )
    assert match, "no download link"
    return match.group(2), base64.b64decode(match.group(1))


def _packages(site: Site) -> list[InstallerPackage]:
    db = site.world.db
    db.rollback()
    db.expire_all()
    return list(db.execute(select(InstallerPackage)).scalars())


def _events(site: Site, action: str, outcome: str = "success") -> list[AuditEvent]:
    db = site.world.db
    db.rollback()
    return list(
        db.execute(
            select(AuditEvent).where(AuditEvent.action == action, AuditEvent.outcome == outcome)
        ).scalars()
    )


def test_the_admin_makes_downloads_and_sees_a_package(client, site: Site) -> None:
    w = site.world
    key = fingerprint(w.state.keys.signing.public_key())
    with browser(client, w.gp_admin) as page:
        assert NB("package.none") in page.get(PAGE).text
        r = _make(page, w.group.id, label="Resepsjonen")
        assert r.status_code == 201, r.text[:500]
        name, file_bytes = _downloaded(r.text)
        package = read_package(file_bytes, expected_fingerprint=key, now=w.state.now())
        assert package.group == w.group.name and package.organisation == w.gp.name
        assert f"fjernhjelp agent install {name} --expect-fingerprint {key}" in r.text
        assert file_bytes.decode().strip() in r.text.replace("&#34;", '"')
        assert NB("package.made_once") in r.text

        listing = page.get(PAGE).text
        assert "Resepsjonen" in listing and "Gp-Admin" in listing
        assert NB("package.uses_left", left=2, max=2) in listing
        assert NB("package.states.active") in listing
        assert key in listing
    (stored,) = _packages(site)
    assert package.package_id == str(stored.id) and stored.max_uses == 2
    assert stored.expires_at - stored.created_at == timedelta(hours=24)
    (event,) = _events(site, "package.created")
    assert event.actor_name == "gp-admin" and event.customer_org_id == w.gp.id


def test_a_granted_technician_makes_one_in_english(client, site: Site) -> None:
    w = site.world
    site.allow_packages()
    with browser(client, w.tech) as page:
        page.cookies.set("fjh_lang", "en")
        html = page.get(PAGE).text
        assert EN("package.title") in html and f'value="{w.group.id}"' in html
        r = _make(page, w.group.id)
        assert r.status_code == 201
        assert EN("package.made_title") in r.text
    (event,) = _events(site, "package.created")
    assert event.actor_name == "tekniker"
    (package,) = _packages(site)
    assert package.grant_id == w.grant.id  # type: ignore[union-attr]


def test_expired_used_up_and_revoked_states(client, site: Site) -> None:
    w = site.world
    with browser(client, w.gp_admin) as page:
        for label in ("en", "to", "tre"):
            assert _make(page, w.group.id, label=label).status_code == 201
    used_up, expired, revoked = sorted(_packages(site), key=lambda p: p.label)[:3]
    db = w.db
    db.get(InstallerPackage, used_up.id).uses = 2  # type: ignore[union-attr]
    db.get(InstallerPackage, expired.id).expires_at = w.state.now() - timedelta(minutes=1)  # type: ignore[union-attr]
    db.get(InstallerPackage, revoked.id).revoked_at = w.state.now()  # type: ignore[union-attr]
    db.commit()
    with browser(client, w.gp_admin) as page:
        html = page.get(PAGE).text
    states = dict(
        re.findall(r'data-package-id="([^"]+)".*?data-testid="package-state">([^<]+)<', html, re.S)
    )
    assert states[str(used_up.id)] == NB("package.states.used_up")
    assert states[str(expired.id)] == NB("package.states.expired")
    assert states[str(revoked.id)] == NB("package.states.revoked")
    assert NB("package.uses_left", left=0, max=2) in html


def test_out_of_range_values_are_refused_in_plain_words(client, site: Site) -> None:
    w = site.world
    with browser(client, w.gp_admin) as page:
        r = _make(page, w.group.id, lifetime_hours=0, label="Beholdes")
        assert r.status_code == 422
        assert NB("package.refused.lifetime_out_of_range", max_hours=2160) in r.text
        assert 'value="Beholdes"' in r.text
        r = _make(page, w.group.id, max_uses=0)
        assert r.status_code == 422
        assert NB("package.refused.max_uses_out_of_range", max=10000) in r.text
    assert _packages(site) == []


def test_revoke_after_confirmation_is_audited(client, site: Site) -> None:
    w = site.world
    with browser(client, w.gp_admin) as page:
        assert _make(page, w.group.id).status_code == 201
        (package,) = _packages(site)
        html = page.get(PAGE).text
        assert f'href="/portal/packages/{package.id}/revoke"' in html
        confirm = f"/portal/packages/{package.id}/revoke"
        html = page.get(confirm).text
        assert NB("package.revoke_title") in html and NB("package.revoke_confirm") in html
        r = form_post(page, confirm, {}, page=confirm)
        assert r.status_code == 303
        assert r.headers["location"] == "/portal/packages?notice=package_revoked"
        html = page.get(r.headers["location"]).text
        assert NB("package.revoked_notice") in html and NB("package.states.revoked") in html
    (package,) = _packages(site)
    assert package.revoked_at is not None and package.usable_at(w.state.now()) == (
        "package_revoked"
    )
    (event,) = _events(site, "package.revoked")
    assert event.actor_name == "gp-admin"


def test_a_technician_revokes_only_packages_it_made(client, site: Site) -> None:
    w = site.world
    site.allow_packages()
    with browser(client, w.gp_admin) as page:
        assert _make(page, w.group.id, label="Kundens").status_code == 201
    with browser(client, w.tech) as page:
        assert _make(page, w.group.id, label="Teknikerens").status_code == 201
    theirs, own = sorted(_packages(site), key=lambda p: p.label)
    assert (theirs.label, own.label) == ("Kundens", "Teknikerens")
    with browser(client, w.tech) as page:
        html = page.get(PAGE).text
        assert "Teknikerens" in html and "Kundens" not in html
        path = f"/portal/packages/{own.id}/revoke"
        assert page.get(path).status_code == 200
        assert form_post(page, path, {}, page=PAGE).status_code == 303
    (event,) = _events(site, "package.revoked")
    assert event.actor_name == "tekniker"
    assert {p.label: p.revoked_at is not None for p in _packages(site)} == {
        "Kundens": False,
        "Teknikerens": True,
    }


@pytest.mark.parametrize("who", ["dentist_admin", "stranger_tech", "vendor_admin"])
def test_others_can_neither_make_see_nor_revoke(client, site: Site, who: str) -> None:
    w = site.world
    with browser(client, w.gp_admin) as page:
        assert _make(page, w.group.id, label="Hemmelig").status_code == 201
    (package,) = _packages(site)
    account = getattr(site, who, None) or getattr(w, who)
    with browser(client, account) as page:
        html = page.get(PAGE).text
        assert "Hemmelig" not in html and f'value="{w.group.id}"' not in html
        assert _make(page, w.group.id).status_code == 404
        assert page.get(f"/portal/packages/{package.id}/revoke").status_code == 404
        path = f"/portal/packages/{package.id}/revoke"
        foreign = form_post(page, path, {}, page=PAGE)
        missing = form_post(page, f"/portal/packages/{uuid.uuid4()}/revoke", {}, page=PAGE)
        assert foreign.status_code == missing.status_code == 404
    assert len(_packages(site)) == 1 and _packages(site)[0].revoked_at is None
    assert _events(site, "package.revoked") == []
    assert len(_events(site, "package.created")) == 1


def test_forms_without_csrf_are_refused_and_change_nothing(client, site: Site) -> None:
    w = site.world
    with browser(client, w.gp_admin) as page:
        r = page.post(PAGE, data={"group_id": str(w.group.id), "lifetime_hours": 24})
        assert r.status_code == 403
        assert _packages(site) == []
        assert _make(page, w.group.id).status_code == 201
        (package,) = _packages(site)
        r = page.post(f"/portal/packages/{package.id}/revoke", data={"csrf_token": "x" * 40})
        assert r.status_code == 403
    assert _packages(site)[0].revoked_at is None
    refused = _events(site, "security.csrf_refused", "denied")
    assert len(refused) == 2 and {e.actor_name for e in refused} == {"gp-admin"}


def test_the_nav_offers_packages_and_machines_to_whom_they_serve(client, site: Site) -> None:
    w = site.world
    with browser(client, w.gp_admin) as page:
        html = page.get("/portal").text
        assert 'href="/portal/packages"' in html and 'href="/portal/machines"' in html
    with browser(client, w.tech) as page:
        html = page.get("/console").text
        assert 'href="/portal/packages"' in html and 'href="/portal/machines"' not in html
    with browser(client, w.vendor_admin) as page:
        html = page.get("/portal").text
        assert 'href="/portal/packages"' not in html and 'href="/portal/machines"' not in html
