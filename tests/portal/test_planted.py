"""Planted machines, tried as the attacker would (issue 8, item 2).

A vendor's technician makes an installer package, the customer ends the grant, and the
package goes on enrolling machines with names the technician chose into the customer's
group, where other vendors' technicians reach them; the customer cannot remove them; the
technician revokes the customer's own packages. Each test performs the attack through
the HTTP API, the pages or the agent's control endpoint, and asserts the refusal, its
audit event, and that the stored state is as it was.
"""

from __future__ import annotations

import base64
import json
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from starlette.websockets import WebSocketDisconnect

from fjernhjelp.audit.models import AuditEvent
from fjernhjelp.control import statements
from fjernhjelp.control.messages import (
    Hello,
    MachineInfo,
    Report,
    SessionEvent,
    Welcome,
    b64,
    parse_server_message,
    unb64,
)
from fjernhjelp.control.package import read_package
from fjernhjelp.i18n import Translator
from fjernhjelp.machines.models import InstallerPackage, Machine
from fjernhjelp.portal import grants
from fjernhjelp.portal.grants import GrantTerms
from fjernhjelp.remote.models import RemoteSession
from tests.helpers import Account, make_user
from tests.portal.access_world import Site, build_site
from tests.portal.web import Api, browser, form_post

NB = Translator("nb")


@pytest.fixture
def site(db, state) -> Site:
    return build_site(db, state)


def _fresh(site: Site) -> None:
    site.world.db.rollback()
    site.world.db.expire_all()


def _events(site: Site, action: str, outcome: str) -> list[AuditEvent]:
    _fresh(site)
    return list(
        site.world.db.execute(
            select(AuditEvent)
            .where(AuditEvent.action == action, AuditEvent.outcome == outcome)
            .order_by(AuditEvent.seq)
        ).scalars()
    )


def _count(site: Site, model: type) -> int:
    _fresh(site)
    return site.world.db.execute(select(func.count()).select_from(model)).scalar_one()


def _make_package(api: Api, group_id: uuid.UUID, **fields: object):  # type: ignore[no-untyped-def]
    return api.post(
        "/packages",
        {"group_id": str(group_id), "lifetime_hours": 24 * 90, "max_uses": 10_000, **fields},
    )


def _info(hostname: str, users: list[str] | None = None) -> MachineInfo:
    return MachineInfo(
        hostname=hostname, os="Windows 11", users=users or ["kari"], agent_version="0.9.1"
    )


def _enrol(client: TestClient, package_file: str, hostname: str):  # type: ignore[no-untyped-def]
    """What the agent does with a package: a fresh identity key, proven to the server."""
    token = read_package(package_file.encode()).enrolment_token
    key = Ed25519PrivateKey.generate()
    public = key.public_key().public_bytes_raw()
    answer = client.post(
        "/api/v1/agents/enrol",
        json={
            "token": token,
            "public_key": b64(public),
            "signature": b64(key.sign(statements.enrol_statement(token, public))),
            "info": _info(hostname).model_dump(mode="json"),
        },
    )
    return answer, key


@contextmanager
def _agent(
    client: TestClient, key: Ed25519PrivateKey, machine_id: uuid.UUID, info: MachineInfo
) -> Iterator[object]:
    """The agent's control link, logged in (the server's Welcome received)."""
    with client.websocket_connect("/agent/control") as ws:
        challenge = parse_server_message(ws.receive_text())
        nonce = unb64(challenge.nonce, 32)  # type: ignore[union-attr]
        proof = key.sign(statements.agent_proof_statement(nonce, machine_id))
        ws.send_text(
            Hello(machine_id=machine_id, signature=b64(proof), info=info).model_dump_json()
        )
        assert isinstance(parse_server_message(ws.receive_text()), Welcome)
        yield ws


def _closed_with(ws) -> int:  # type: ignore[no-untyped-def]
    """Read until the server closes the link (a Dial may come first); the close code."""
    with pytest.raises(WebSocketDisconnect) as closed:
        while True:
            ws.receive_text()
    return closed.value.code


def _refused_login(client: TestClient, key: Ed25519PrivateKey, machine_id: uuid.UUID) -> int:
    with client.websocket_connect("/agent/control") as ws:
        challenge = parse_server_message(ws.receive_text())
        nonce = unb64(challenge.nonce, 32)  # type: ignore[union-attr]
        proof = key.sign(statements.agent_proof_statement(nonce, machine_id))
        ws.send_text(
            Hello(machine_id=machine_id, signature=b64(proof), info=_info("x")).model_dump_json()
        )
        return _closed_with(ws)


# -- who may make packages --------------------------------------------------------


def test_a_technician_on_a_grant_without_the_package_right_makes_none(client, site: Site) -> None:
    w = site.world
    api = Api(client, w.tech)
    refused = _make_package(api, w.group.id)
    assert refused.status_code == 403 and refused.json()["reason"] == "packages_not_granted"
    with browser(client, w.tech) as page:
        html = page.get("/portal/packages").text
        assert f'value="{w.group.id}"' not in html  # nothing offered
        data = {"group_id": str(w.group.id), "lifetime_hours": 24, "max_uses": 1}
        r = form_post(page, "/portal/packages", data, page="/portal/packages")
        assert r.status_code == 403 and NB("package.refused.packages_not_granted") in r.text
    assert _count(site, InstallerPackage) == 0
    denied = _events(site, "package.created", "denied")
    assert [(e.actor_name, e.reason, e.customer_org_id) for e in denied] == [
        ("tekniker", "packages_not_granted", w.gp.id)
    ] * 2
    # A vendor with no grant at all learns nothing, and the event names no customer.
    stranger = _make_package(Api(client, site.stranger_tech), w.group.id)
    assert stranger.status_code == 404
    last = _events(site, "package.created", "denied")[-1]
    assert (last.reason, last.customer_org_id) == ("no_such_group", None)
    assert _count(site, InstallerPackage) == 0


def test_the_grant_form_offers_the_package_right_labelled_as_planting(client, site: Site) -> None:
    w = site.world
    assert w.grant is not None
    path = f"/portal/grants/{w.grant.id}"
    with browser(client, w.gp_admin) as page:
        new = page.get(f"/portal/grants/new?agreement={w.agreement.id}").text  # type: ignore[union-attr]
        assert 'name="may_make_packages"' in new and NB("grant.may_make_packages_hint") in new
        html = page.get(path).text
        assert NB("grant.may_make_packages") in html and NB("grant.may_make_packages_hint") in html
        assert (
            'name="may_make_packages"' in html
            and "checked>" not in html.split('name="may_make_packages"')[1].split("\n")[0]
        )
        data = {"permissions": ["view", "control", "chat"], "may_make_packages": "on"}
        assert form_post(page, path, data, page=path).status_code == 303
        assert NB("grant.packages_yes") in page.get(path).text
    changed = _events(site, "grant.changed", "success")[-1]
    details = json.loads(changed.details)
    assert (details["before"]["may_make_packages"], details["after"]["may_make_packages"]) == (
        False,
        True,
    )
    api = Api(client, w.vendor_admin)
    assert api.get(f"/grants/{w.grant.id}").json()["may_make_packages"] is True


# -- a package lives with its grant ---------------------------------------------------


def _end_revoked(site: Site) -> None:
    w = site.world
    grants.revoke(w.db, w.caller(w.gp_admin), w.grant.id)  # type: ignore[union-attr]
    w.db.commit()


def _end_withdrawn(site: Site) -> None:
    site.allow_packages(False)


def _end_expired(site: Site) -> None:
    site.change_grant(may_make_packages=True, expires_at=site.world.state.now() + timedelta(days=2))
    site.world.state.clock.advance(days=3)  # type: ignore[attr-defined]  # the sweep has not run


def _end_unnamed(site: Site) -> None:
    w = site.world
    colleague = make_user(w.db, w.state, w.vendor, "kollega")
    w.db.commit()
    site.change_grant(may_make_packages=True, technician_ids=frozenset({colleague.user.id}))


@pytest.mark.parametrize(
    ("end", "reason"),
    [
        (_end_revoked, "package_grant_ended"),
        (_end_withdrawn, "package_grant_withdrawn"),
        (_end_expired, "package_grant_ended"),
        (_end_unnamed, "package_maker_refused"),
    ],
)
def test_a_package_stops_enrolling_when_its_grant_ends(
    client, site: Site, end, reason: str
) -> None:
    w = site.world
    site.allow_packages()
    tech = Api(client, w.tech)
    made = _make_package(tech, w.group.id, label="Til kunden")
    assert made.status_code == 201, made.text
    package_file = made.json()["file"]
    first, _ = _enrol(client, package_file, "lege-pc-02")
    assert first.status_code == 201

    end(site)
    planted, _ = _enrol(client, package_file, "RESEPSJON-PC0")
    assert planted.status_code == 403 and planted.json()["reason"] == reason
    (event,) = _events(site, "machine.enrolment", "denied")
    assert (event.reason, event.customer_org_id) == (reason, w.gp.id)
    assert "RESEPSJON-PC0" in event.details and str(w.grant.id) in event.details  # type: ignore[union-attr]
    _fresh(site)
    assert [m.hostname for m in w.db.execute(select(Machine)).scalars()] == ["lege-pc-02"]
    package = w.db.get(InstallerPackage, uuid.UUID(made.json()["id"]))
    assert package is not None and package.uses == 1 and package.revoked_at is None
    # The customer's list says why the package no longer works.
    (listed,) = [p for p in Api(client, w.gp_admin).get("/packages").json()]
    assert listed["state"] == "not_allowed" and listed["grant_id"] == str(w.grant.id)  # type: ignore[union-attr]


def test_a_package_made_by_a_vendor_before_grants_were_recorded_is_refused(
    client, site: Site
) -> None:
    """Rows from before migration 0006 carry no grant: only the customer's own count."""
    w = site.world
    site.allow_packages()
    made = _make_package(Api(client, w.tech), w.group.id)
    _fresh(site)
    package = w.db.get(InstallerPackage, uuid.UUID(made.json()["id"]))
    assert package is not None
    package.grant_id = None
    w.db.commit()
    planted, _ = _enrol(client, made.json()["file"], "RESEPSJON-PC0")
    assert planted.status_code == 403
    assert planted.json()["reason"] == "package_maker_not_customer"
    assert _count(site, Machine) == 0
    assert _events(site, "machine.enrolment", "denied")[0].reason == "package_maker_not_customer"


def test_a_technician_cannot_revoke_the_customers_package(client, site: Site) -> None:
    w = site.world
    site.allow_packages()
    made = Api(client, w.gp_admin).post(
        "/packages", {"group_id": str(w.group.id), "lifetime_hours": 24, "max_uses": 5}
    )
    package_id = made.json()["id"]
    tech = Api(client, w.tech)
    assert tech.post(f"/packages/{package_id}/revoke").status_code == 404
    assert package_id not in {p["id"] for p in tech.get("/packages").json()}
    with browser(client, w.tech) as page:
        path = f"/portal/packages/{package_id}/revoke"
        assert page.get(path).status_code == 404
        assert form_post(page, path, {}, page="/portal/packages").status_code == 404
    denied = _events(site, "package.revoked", "denied")
    assert [(e.actor_name, e.reason, e.customer_org_id) for e in denied] == [
        ("tekniker", "no_such_package", w.gp.id)
    ] * 2
    assert _events(site, "package.revoked", "success") == []
    _fresh(site)
    package = w.db.get(InstallerPackage, uuid.UUID(package_id))
    assert package is not None and package.revoked_at is None
    assert _enrol(client, made.json()["file"], "lege-pc-03")[0].status_code == 201


# -- removing a machine -------------------------------------------------------------


def _enrolled(client: TestClient, site: Site, hostname: str = "lege-pc-01"):  # type: ignore[no-untyped-def]
    w = site.world
    made = Api(client, w.gp_admin).post(
        "/packages", {"group_id": str(w.group.id), "lifetime_hours": 24, "max_uses": 5}
    )
    answer, key = _enrol(client, made.json()["file"], hostname)
    assert answer.status_code == 201
    return uuid.UUID(answer.json()["machine_id"]), key, made.json()["file"]


@pytest.mark.parametrize("who", ["tech", "rival_tech", "vendor_admin", "dentist_admin"])
def test_no_one_but_the_customers_admin_removes_a_machine(client, site: Site, who: str) -> None:
    w = site.world
    machine_id, _, _ = _enrolled(client, site)
    account: Account = getattr(site, who, None) or getattr(w, who)
    assert Api(client, account).delete(f"/machines/{machine_id}").status_code == 404
    with browser(client, account) as page:
        assert page.get(f"/portal/machines/{machine_id}/remove").status_code in (403, 404)
        r = form_post(page, f"/portal/machines/{machine_id}/remove", {}, page="/account")
        assert r.status_code in (403, 404)
    denied = _events(site, "machine.removed", "denied")
    assert denied and all(e.actor_name == account.username for e in denied)
    # Only the customer reads attempts on its machines; no vendor is told whose it is.
    assert {e.customer_org_id for e in denied} == {None}
    assert _events(site, "machine.removed", "success") == []
    _fresh(site)
    assert w.db.get(Machine, machine_id).status == "active"  # type: ignore[union-attr]


def test_removing_a_machine_cuts_its_link_ends_its_sessions_and_refuses_its_key(
    client, site: Site
) -> None:
    w = site.world
    machine_id, key, package_file = _enrolled(client, site)
    tech = Api(client, w.tech)
    # The admin's browser first: a second test client starts the app again, and a
    # start ends the sessions left from before it.
    with (
        browser(client, w.gp_admin) as page,
        _agent(client, key, machine_id, _info("lege-pc-01")) as ws,
    ):
        asked = tech.post(
            "/sessions",
            {
                "machine_id": str(machine_id),
                "technician_key": base64.b64encode(os.urandom(32)).decode(),
            },
        )
        assert asked.status_code == 201, asked.text
        confirm = f"/portal/machines/{machine_id}/remove"
        html = page.get(confirm).text
        assert NB("machine.remove_title") in html and "lege-pc-01" in html
        assert "Gp-Admin" in html  # who made the package it came with
        r = form_post(page, confirm, {}, page=confirm)
        assert r.status_code == 303
        assert r.headers["location"] == "/portal/machines?notice=machine_removed"
        assert _closed_with(ws) == 4401  # the control link, cut at once
        listing = page.get(r.headers["location"]).text
        assert NB("machine.removed_notice") in listing and "lege-pc-01" not in listing
    (removed,) = _events(site, "machine.removed", "success")
    assert (removed.actor_name, removed.customer_org_id) == ("gp-admin", w.gp.id)
    assert removed.machine_id == str(machine_id)
    _fresh(site)
    assert w.db.get(Machine, machine_id).status == "revoked"  # type: ignore[union-attr]
    session = w.db.get(RemoteSession, uuid.UUID(asked.json()["session_id"]))
    assert session is not None and session.status == "ended"
    assert session.end_reason == "machine_removed"

    # The key is refused from then on, on the control link and at enrolment.
    assert _refused_login(client, key, machine_id) == 4401
    refused = _events(site, "agent.connect", "denied")[-1]
    assert (refused.reason, refused.machine_id) == ("machine_revoked", str(machine_id))
    token = read_package(package_file.encode()).enrolment_token
    public = key.public_key().public_bytes_raw()
    again = client.post(
        "/api/v1/agents/enrol",
        json={
            "token": token,
            "public_key": b64(public),
            "signature": b64(key.sign(statements.enrol_statement(token, public))),
            "info": _info("lege-pc-01").model_dump(mode="json"),
        },
    )
    assert again.status_code == 403 and again.json()["reason"] == "identity_reused"
    # Nobody reaches it any more.
    assert tech.get("/machines").json() == []
    retry = tech.post(
        "/sessions",
        {
            "machine_id": str(machine_id),
            "technician_key": base64.b64encode(os.urandom(32)).decode(),
        },
    )
    assert retry.status_code == 403 and retry.json()["reason"] == "no_such_machine"
    assert Api(client, w.gp_admin).delete(f"/machines/{machine_id}").status_code == 404


def test_the_api_removes_a_machine_for_the_customers_admin(client, site: Site) -> None:
    w = site.world
    machine_id, key, _ = _enrolled(client, site)
    with _agent(client, key, machine_id, _info("lege-pc-01")) as ws:
        assert Api(client, w.gp_admin).delete(f"/machines/{machine_id}").status_code == 204
        assert _closed_with(ws) == 4401
    (removed,) = _events(site, "machine.removed", "success")
    assert removed.actor_name == "gp-admin"
    assert _refused_login(client, key, machine_id) == 4401


# -- what the agent says about itself -------------------------------------------------


def test_an_agent_renaming_itself_or_changing_users_is_audited(client, site: Site) -> None:
    w = site.world
    machine_id, key, _ = _enrolled(client, site)
    with _agent(client, key, machine_id, _info("lege-pc-01", ["kari"])) as ws:
        assert _events(site, "machine.info_changed", "info") == []  # nothing changed
        ws.send_text(Report(info=_info("RESEPSJON-PC0", ["kari", "admin"])).model_dump_json())
        # A second hello is malformed: the server closes the link only after it has
        # handled the report before it, so the close is the event to wait for.
        ws.send_text(
            Hello(
                machine_id=machine_id, signature=b64(bytes(64)), info=_info("x")
            ).model_dump_json()
        )
        _closed_with(ws)
    (changed,) = _events(site, "machine.info_changed", "info")
    assert (changed.machine_id, changed.customer_org_id) == (str(machine_id), w.gp.id)
    assert changed.actor_name == "agent@lege-pc-01"
    assert json.loads(changed.details) == {
        "before": {"hostname": "lege-pc-01", "users": ["kari"]},
        "after": {"hostname": "RESEPSJON-PC0", "users": ["kari", "admin"]},
    }
    # At login too: the name it connects with is compared with the stored one.
    with _agent(client, key, machine_id, _info("lege-pc-01", ["kari", "admin"])):
        pass
    renamed = _events(site, "machine.info_changed", "info")
    assert len(renamed) == 2
    assert json.loads(renamed[1].details)["after"]["hostname"] == "lege-pc-01"
    _fresh(site)
    assert w.db.get(Machine, machine_id).hostname == "lege-pc-01"  # type: ignore[union-attr]


def test_an_agent_event_with_a_refused_detail_name_keeps_its_link(client, site: Site) -> None:
    """An agent that names a detail ``key`` (which the audit log refuses, lest secrets
    slip in) loses that entry, not its control link nor the rest of the event."""
    w = site.world
    machine_id, key, _ = _enrolled(client, site)
    tech = Api(client, w.tech)
    with _agent(client, key, machine_id, _info("lege-pc-01")) as ws:
        asked = tech.post(
            "/sessions",
            {
                "machine_id": str(machine_id),
                "technician_key": base64.b64encode(os.urandom(32)).decode(),
            },
        )
        assert asked.status_code == 201, asked.text
        session_id = uuid.UUID(asked.json()["session_id"])
        ws.send_text(
            SessionEvent(
                session_id=session_id,
                action="input.held_back",
                details={"key": 3, "pointer_events": 2},
            ).model_dump_json()
        )
        # The link still works: a report after it is handled (a rename is audited).
        ws.send_text(Report(info=_info("lege-pc-02")).model_dump_json())
        ws.send_text(
            Hello(
                machine_id=machine_id, signature=b64(bytes(64)), info=_info("x")
            ).model_dump_json()
        )
        _closed_with(ws)
    (held,) = _events(site, "input.held_back", "denied")
    details = json.loads(held.details)
    assert "key" not in details and details["pointer_events"] == 2
    assert details["refused_detail_names"] == ["key"]
    assert len(_events(site, "machine.info_changed", "info")) == 1


# -- which machines a technician sees -------------------------------------------------


def test_a_technician_sees_machines_only_under_a_live_grant_that_names_it(
    client, site: Site
) -> None:
    w = site.world
    machine = site.machine()
    colleague = make_user(w.db, w.state, w.vendor, "kollega")
    w.db.commit()
    grant = w.grant
    assert grant is not None
    tech = Api(client, w.tech)
    assert [m["hostname"] for m in tech.get("/machines").json()] == ["lege-pc-01"]

    grants.update(
        w.db,
        w.caller(w.gp_admin),
        grant.id,
        GrantTerms(
            permissions=grant.permissions,
            technician_ids=frozenset({colleague.user.id}),
            expires_at=w.state.now() + timedelta(days=2),
        ),
    )
    w.db.commit()
    assert tech.get("/machines").json() == []
    assert tech.get(f"/machines/{machine.id}").status_code == 404
    named = Api(client, colleague)
    assert [m["hostname"] for m in named.get("/machines").json()] == ["lege-pc-01"]
    # Expired by time, before the sweep marks it: gone from the list as well.
    w.state.clock.advance(days=3)  # type: ignore[attr-defined]
    named = Api(client, colleague)  # the login of three days ago has expired too
    assert named.get("/machines").json() == []
    assert named.get(f"/machines/{machine.id}").status_code == 404
    # The customer's admin still sees it, as before.
    with browser(client, w.gp_admin) as page:
        assert "lege-pc-01" in page.get("/portal/machines").text
