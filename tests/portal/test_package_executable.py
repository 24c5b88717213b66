"""The one-file agent installer on the package page: the page that shows a new package
posts it back and gets the build with it appended (control.agent_file), audited as
``package.executable_downloaded``; and the attacks: another server's package, an altered
one, another package's id, a package the caller may not manage, a revoked one, no build.
Each is refused, audited, and hands out nothing. (The real build: the Chromium story in
tests/e2e/test_onefile_agent_story.py.)"""

from __future__ import annotations

import base64
import re
import uuid
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select

from fjernhjelp.audit.models import AuditEvent
from fjernhjelp.control.agent_file import read_agent_file
from fjernhjelp.control.package import build_package, fingerprint
from fjernhjelp.machines import packages
from fjernhjelp.support.build import target_name
from tests.portal.access_world import Site, build_site
from tests.portal.web import browser, form_post

PAGE = "/portal/packages"
BUILD = b"\x7fELF stand-in for the one-file build\n" * 4000
ACTION = "package.executable_downloaded"


@pytest.fixture
def site(db, state, tmp_path: Path) -> Site:
    folder = tmp_path / "dist"
    folder.mkdir()
    (folder / target_name()).write_bytes(BUILD)
    state.settings.support_client_dir = folder
    return build_site(db, state)


def _made(page, group_id: uuid.UUID) -> tuple[uuid.UUID, str, str]:  # type: ignore[no-untyped-def]
    data = {"group_id": str(group_id), "lifetime_hours": 24, "max_uses": 2}
    r = form_post(page, PAGE, data, page=PAGE)
    assert r.status_code == 201, r.text[:500]
    action = re.search(r'action="/portal/packages/([0-9a-f-]+)/agent\.run"', r.text)
    posted = re.search(r'name="package" value="([A-Za-z0-9+/=]+)"', r.text)
    assert action and posted, "no one-file download on the page"
    return uuid.UUID(action.group(1)), posted.group(1), r.text


def _post(page, package_id: uuid.UUID | str, package_b64: str):  # type: ignore[no-untyped-def]
    return form_post(page, f"{PAGE}/{package_id}/agent.run", {"package": package_b64}, page=PAGE)


def _events(site: Site) -> list[AuditEvent]:
    db = site.world.db
    db.rollback()
    return list(db.execute(select(AuditEvent).where(AuditEvent.action == ACTION)).scalars())


def test_the_admin_downloads_the_one_file_with_the_package_inside(
    client, site: Site, tmp_path: Path
) -> None:
    w = site.world
    key = fingerprint(w.state.keys.signing.public_key())
    with browser(client, w.gp_admin) as page:
        package_id, posted, html = _made(page, w.group.id)
        assert f"install --expect-fingerprint {key}" in html
        r = _post(page, package_id, posted)
    assert r.status_code == 200, r.text[:500]
    slug = re.sub(r"[^a-z0-9]+", "-", w.group.name.lower().replace("ø", "o")).strip("-")
    assert r.headers["content-disposition"] == f'attachment; filename="fjernhjelp-agent-{slug}.run"'
    assert r.headers["cache-control"] == "no-store"
    assert r.content.startswith(BUILD)
    saved = tmp_path / "saved.run"
    saved.write_bytes(r.content)
    checked = read_agent_file(saved, expected_fingerprint=key)
    assert checked.executable_size == len(BUILD)
    assert checked.package.package_id == str(package_id)
    assert base64.b64decode(posted) in r.content  # the package exactly as the page made it
    [event] = _events(site)
    assert event.outcome == "success" and event.customer_org_id == w.gp.id
    assert str(package_id) in event.details and key in event.details


def test_attacks_on_the_download_are_refused_audited_and_hand_out_nothing(
    client, site: Site
) -> None:
    w = site.world
    with browser(client, w.gp_admin) as page:
        first, first_b64, _ = _made(page, w.group.id)
        second, second_b64, _ = _made(page, w.group.id)
        original = base64.b64decode(first_b64)
        # Another server's package (its own key) with this package's id.
        foreign = build_package(
            Ed25519PrivateKey.generate(),
            server_url="https://evil.example",
            enrolment_token="stolen",
            group=w.group.name,
            package_id=str(first),
        )
        altered = original.replace(b'"signature": "', b'"signature": "A', 1)
        cases = {
            "foreign": (first, base64.b64encode(foreign).decode(), 422),
            "altered": (first, base64.b64encode(altered).decode(), 422),
            "other_id": (first, second_b64, 422),
            "not_base64": (first, "!!!", 422),
            "unknown": (uuid.uuid4(), first_b64, 404),
        }
        for name, (package_id, body, status) in cases.items():
            r = _post(page, package_id, body)
            assert r.status_code == status, (name, r.status_code, r.text[:300])
            assert BUILD not in r.content, name
    # A technician of another organisation may not manage this customer's package.
    with browser(client, w.tech) as page:
        r = _post(page, first, first_b64)
        assert r.status_code == 404 and BUILD not in r.content
    # Revoked: no longer handed out.
    db = w.db
    db.rollback()
    packages.revoke(db, w.caller(w.gp_admin), first)
    db.commit()
    with browser(client, w.gp_admin) as page:
        r = _post(page, first, first_b64)
        assert r.status_code == 422 and BUILD not in r.content
    events = _events(site)
    assert [e.outcome for e in events] == ["denied"] * 7
    assert [e.reason for e in events] == [
        "not_this_package", "not_this_package", "not_this_package", "not_this_package",
        "no_such_package", "no_such_package", "package_not_usable",
    ]  # fmt: skip
    # Nothing changed: the second package is still usable and unused.
    db.rollback()
    row = db.get(packages.InstallerPackage, second)
    assert row is not None and row.uses == 0 and row.revoked_at is None

    # No build on the server: 503, said and audited.
    w.state.settings.support_client_dir = Path("/nonexistent-build-folder")
    with browser(client, w.gp_admin) as page:
        r = _post(page, second, second_b64)
    assert r.status_code == 503
    assert (_events(site)[-1].outcome, _events(site)[-1].reason) == (
        "denied",
        "package.executable_unavailable",
    )
