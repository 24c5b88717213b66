"""Taking over someone else's account with an enrolment link, tried as an attacker would.

An admin may hand a colleague a fresh one-time link (a lost phone). Used against an
operator, or against a technician whom customers trust by name, the same link is a
takeover. These tests perform each attack and assert the refusal or its consequences,
the audit event, and that nothing else changed.
"""

from __future__ import annotations

import os
import re
import threading
import uuid
from datetime import timedelta

import pyotp
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from typer.testing import CliRunner

from fjernhjelp.audit.models import AuditEvent
from fjernhjelp.auth import enrolment, factors, totp
from fjernhjelp.auth.models import EnrolmentLink, Factor, LoginSession, User, UserStatus
from fjernhjelp.caller import Caller
from fjernhjelp.cli import admin as admin_cli
from fjernhjelp.machines.models import Machine
from fjernhjelp.portal import members
from fjernhjelp.portal.errors import OperatorOnly
from fjernhjelp.portal.revocations import RevocationKind
from fjernhjelp.remote import sessions as remote_sessions
from fjernhjelp.remote.models import RemoteSession
from tests.helpers import Account, csrf_from, make_org, make_user
from tests.portal.web import Api, browser, form_post
from tests.portal.world import World, build_world
from tests.server.test_pages_login import web_login

LINK = timedelta(hours=72)
NEW_PASSWORD = "Fjellvann og blåbær 2026"
STOLEN_PASSWORD = "Inntrengeren har valgt dette 77"


def _events(db, action: str, **where: object) -> list[AuditEvent]:
    db.rollback()
    db.expire_all()
    stmt = select(AuditEvent).where(AuditEvent.action == action)
    for column, value in where.items():
        stmt = stmt.where(getattr(AuditEvent, column) == value)
    return list(db.execute(stmt.order_by(AuditEvent.seq)).scalars())


def _links_for(db, user: User) -> int:
    db.rollback()
    return db.execute(
        select(func.count()).select_from(EnrolmentLink).where(EnrolmentLink.user_id == user.id)
    ).scalar_one()


def _operator_org_admin(world: World) -> Account:
    """A colleague the operator invited as admin: the only role the portal can give."""
    admin = make_user(
        world.db,
        world.state,
        world.operator.user.organisation,
        "drift-kollega",
        admin=True,
        technician=False,
    )
    world.db.commit()
    return admin


def _secret(page: str) -> str:
    return re.search(r'data-testid="totp-secret">([A-Z2-7 ]+)<', page).group(1).replace(" ", "")


def _use_link(client: TestClient, link: str, password: str) -> tuple[int, str]:
    """Open the link in a fresh browser, choose ``password`` and enrol a TOTP app."""
    path = "/enroll/" + link.rsplit("/enroll/", 1)[1]
    with TestClient(client.app, base_url="http://testserver", follow_redirects=False) as c:
        page = c.get(path)
        assert page.status_code == 200, page.text
        secret = _secret(page.text)
        r = c.post(
            path,
            data={
                "password": password,
                "password_again": password,
                "code": pyotp.TOTP(secret).now(),
                "csrf_token": csrf_from(page.text),
            },
        )
    return r.status_code, secret


def _holder(world: World, user: User, password: str, secret: str) -> Account:
    """Whoever now holds ``user``'s new password and authenticator (the code that
    confirmed the factor is spent, so the next login uses the next step)."""
    account = Account(user, password, secret, world.state)
    account._last_step = totp.step_at(world.state.now().timestamp())
    return account


# -- only operators manage operator accounts ------------------------------------------


def test_operator_org_admin_cannot_get_an_operators_enrolment_link(client, world: World) -> None:
    attacker = _operator_org_admin(world)
    operator = world.operator.user
    api = Api(client, attacker)
    # The admin sees the operator among its colleagues ...
    assert operator.username in [a["username"] for a in api.get("/accounts").json()]

    r = api.post(f"/accounts/{operator.id}/enrolment-link")
    assert r.status_code == 403, r.text
    assert r.json()["reason"] == "member.operator_only"
    assert "enrolment_link" not in r.json()

    refused = _events(world.db, "account.enrolment_link.issued", outcome="denied")
    assert [(e.actor_name, e.reason) for e in refused] == [
        ("drift-kollega", "member.operator_only")
    ]
    assert operator.username in refused[0].details
    # No link exists, and the operator's own login works as before.
    assert _links_for(world.db, operator) == 0
    assert "operator" in Api(client, world.operator).get("/me").json()["roles"]

    # The portal's page refuses alike (the rule is in the service, not the view).
    with browser(client, attacker) as page:
        people = page.get("/portal/people").text
        assert operator.username in people and f"{operator.id}/link" not in people
        r = form_post(page, f"/portal/people/{operator.id}/link", {}, page="/portal/people")
        assert r.status_code == 403
        assert "enrolment-link" not in r.text
    assert len(_events(world.db, "account.enrolment_link.issued", outcome="denied")) == 2
    assert _links_for(world.db, operator) == 0


def test_operator_org_admin_cannot_deactivate_demote_or_change_an_operator(
    client, world: World
) -> None:
    attacker = _operator_org_admin(world)
    operator = world.operator.user
    before = (operator.status, operator.is_operator, operator.is_admin, operator.outside_eea)
    api = Api(client, attacker)
    attempts = [
        ("post", f"/accounts/{operator.id}/deactivate", None, "account.deactivated"),
        ("put", f"/accounts/{operator.id}/admin", {"value": True}, "account.admin_granted"),
        ("put", f"/accounts/{operator.id}/outside-eea", {"value": True}, "account.changed"),
        ("post", f"/accounts/{operator.id}/suspend", None, "account.suspended"),
    ]
    for method, path, body, action in attempts:
        r = api.post(path) if method == "post" else api.put(path, body)
        assert r.status_code == 403, (path, r.text)
        refused = _events(world.db, action, outcome="denied", actor_name="drift-kollega")
        assert len(refused) == 1, action

    with browser(client, attacker) as page:
        r = form_post(page, f"/portal/people/{operator.id}/deactivate", {}, "/portal/people")
        assert r.status_code == 403
    assert len(_events(world.db, "account.deactivated", outcome="denied")) == 2

    world.db.rollback()
    world.db.expire_all()
    operator = world.db.get(User, operator.id)
    after = (operator.status, operator.is_operator, operator.is_admin, operator.outside_eea)
    assert after == before == (UserStatus.ACTIVE, True, False, False)
    assert world.events == []  # nothing was cut
    assert "operator" in Api(client, world.operator).get("/me").json()["roles"]


def test_a_deactivated_operator_is_not_reactivated_by_an_admin(world: World) -> None:
    attacker = _operator_org_admin(world)
    operator = world.operator.user
    operator.status = UserStatus.DISABLED  # e.g. by the inactivity sweep
    world.db.commit()
    with pytest.raises(OperatorOnly):
        members.reactivate(world.db, world.caller(attacker), operator.id)
    world.db.rollback()
    assert world.db.get(User, operator.id).status == UserStatus.DISABLED


def test_an_operator_still_re_enrols_another_operator(world: World) -> None:
    second = make_user(
        world.db, world.state, world.operator.user.organisation, "operator-2", operator=True
    )
    world.db.commit()
    invitation = members.new_link(
        world.db, world.caller(world.operator), second.user.id, link_lifetime=LINK
    )
    world.db.commit()
    assert invitation.token and _links_for(world.db, second.user) == 1


# -- one link, one use -------------------------------------------------------------------


def _pending_link(world: World) -> tuple[User, str]:
    invitation = members.invite(
        world.db,
        world.caller(world.vendor_admin),
        username="ny-tekniker",
        email="ny@example.no",
        display_name="Ny Tekniker",
        technician=True,
        link_lifetime=LINK,
    )
    world.db.commit()
    with world.state.db_sessions() as db:
        # The enrolment page was shown once: both attempts below scan the same QR code.
        link = enrolment.open_link(db, invitation.token, world.state.now())
        enrolment.pending_totp(db, world.state.keys.at_rest, link)
        db.commit()
    return invitation.user, invitation.token


def _complete(db, world: World, link: EnrolmentLink, password: str, code: str) -> None:
    enrolment.complete(
        db,
        link=link,
        passwords=world.state.login.passwords,
        at_rest_key=world.state.keys.at_rest,
        password=password,
        password_again=password,
        code=code,
        min_length=world.state.settings.password_min_length,
        now=world.state.now(),
        source_address="192.0.2.66",
    )


def _code_for(world: World, user: User) -> str:
    """The code the person's app shows for the QR code both attempts scanned."""
    with world.state.db_sessions() as db:
        factor = db.execute(select(Factor).where(Factor.user_id == user.id)).scalar_one()
        return pyotp.TOTP(factors.totp_secret(world.state.keys.at_rest, factor)).now()


def _one_password_holds(world: World, user: User, winners: list[str]) -> None:
    assert len(winners) == 1, winners
    world.db.rollback()
    world.db.expire_all()
    user = world.db.get(User, user.id)
    passwords = world.state.login.passwords
    holds = [p for p in (NEW_PASSWORD, STOLEN_PASSWORD) if passwords.verify(user.password_hash, p)]
    assert holds == winners
    assert user.status == UserStatus.ACTIVE and len(user.confirmed_factors) == 1
    used = _events(world.db, "account.enrolment", outcome="success")
    assert len(used) == 1


def test_a_link_read_twice_is_used_once(world: World) -> None:
    """Two requests both found the link unused; the second to post must be refused
    (the check is the UPDATE that spends it, not what was read before)."""
    user, token = _pending_link(world)
    code = _code_for(world, user)
    first, second = world.state.db_sessions(), world.state.db_sessions()
    try:
        link_first = enrolment.open_link(first, token, world.state.now())
        first.commit()
        link_second = enrolment.open_link(second, token, world.state.now())
        second.commit()
        assert link_first.used_at is None and link_second.used_at is None

        _complete(first, world, link_first, NEW_PASSWORD, code)
        first.commit()
        with pytest.raises(enrolment.LinkInvalid) as refused:
            _complete(second, world, link_second, STOLEN_PASSWORD, code)
        second.rollback()
    finally:
        first.close()
        second.close()
    assert refused.value.reason == "used_link"
    _one_password_holds(world, user, [NEW_PASSWORD])


def test_two_simultaneous_posts_of_one_link_succeed_once(backend, world: World) -> None:
    """Real concurrency: two connections, both past the link check before either
    writes. PostgreSQL lets them run side by side (SQLite serialises whole write
    transactions, which the test above covers)."""
    if backend.name != "postgresql":
        pytest.skip("SQLite takes the write lock at BEGIN: the requests cannot overlap")
    user, token = _pending_link(world)
    code = _code_for(world, user)
    both_read = threading.Barrier(2, timeout=60)
    outcome: dict[str, str] = {}

    def attempt(password: str) -> None:
        with world.state.db_sessions() as db:
            link = enrolment.open_link(db, token, world.state.now())
            both_read.wait()
            try:
                _complete(db, world, link, password, code)
                db.commit()
                outcome[password] = "enrolled"
            except enrolment.LinkInvalid as exc:
                db.rollback()
                outcome[password] = exc.reason

    threads = [threading.Thread(target=attempt, args=(p,)) for p in (NEW_PASSWORD, STOLEN_PASSWORD)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcome.values()) == ["enrolled", "used_link"], outcome
    winners = [p for p, result in outcome.items() if result == "enrolled"]
    _one_password_holds(world, user, winners)


# -- a vendor admin re-enrols a technician whom a customer named ---------------------------


def _machine(world: World) -> Machine:
    world.db.rollback()  # a fresh snapshot: the app has written since this session read
    machine = Machine(
        organisation_id=world.gp.id,
        group_id=world.group.id,
        identity_public_key=os.urandom(32),
        hostname="lege-pc-01",
        os="Debian GNU/Linux 13",
        agent_version="0.9.1",
        users="kari",
        has_display=True,
        enrolled_at=world.state.now() - timedelta(days=2),
        last_seen_at=world.state.now(),
    )
    world.db.add(machine)
    world.db.commit()
    return machine


def _running_session(world: World, machine: Machine) -> uuid.UUID:
    issued = remote_sessions.request(
        world.db,
        Caller.of_person(world.tech.user, world.state.now()),
        machine_id=machine.id,
        technician_key=os.urandom(32),
        signing_key=world.state.keys.signing,
        node_id="node-test",
    )
    remote_sessions.mark_active(world.db, issued.session.id, world.state.now())
    world.db.commit()
    return issued.session.id


def test_vendor_admin_re_enrolling_a_named_technician_is_seen_and_ends_everything(
    client, db, state
) -> None:
    world = build_world(db, state, grant=False)
    tech = world.tech.user
    world.make_grant(technician_ids=frozenset({tech.id}))
    bystander = make_org(db, "Tannlegen Sentrum")  # no grant: none of its business
    bystander_admin = make_user(db, state, bystander, "tann-admin", admin=True, technician=False)
    db.commit()
    old_factor_ids = {f.id for f in tech.confirmed_factors}

    # The technician is at work: a CLI login, a browser login, a running remote session.
    technician_api = Api(client, world.tech)
    technician_web = TestClient(client.app, base_url="http://testserver", follow_redirects=False)
    web_login(technician_web, world.tech)
    assert technician_web.get("/console").status_code == 200
    session_id = _running_session(world, _machine(world))

    # The vendor's admin asks for a link for the technician and uses it.
    r = Api(client, world.vendor_admin).post(f"/accounts/{tech.id}/enrolment-link")
    assert r.status_code == 201, r.text
    # The customer who named the technician sees the link handed out before it is used.
    issued_at_gp = _events(db, "account.enrolment_link.issued", customer_org_id=world.gp.id)
    assert [e.actor_name for e in issued_at_gp] == ["vendor-admin"]
    status, secret = _use_link(client, r.json()["enrolment_link"], STOLEN_PASSWORD)
    assert status == 303

    # Every factor the technician had is gone; the old password and code no longer log in.
    db.rollback()
    db.expire_all()
    tech = db.get(User, tech.id)
    assert {f.id for f in tech.confirmed_factors}.isdisjoint(old_factor_ids)
    assert len(tech.confirmed_factors) == 1
    assert not state.login.passwords.verify(tech.password_hash, world.tech.password)
    # Every login session ended: the CLI token and the browser cookie are dead.
    assert (
        db.execute(
            select(func.count()).select_from(LoginSession).where(LoginSession.user_id == tech.id)
        ).scalar_one()
        == 0
    )
    assert technician_api.get("/me").status_code == 401
    assert technician_web.get("/console").status_code == 303
    technician_web.close()
    # The running remote session is cut: the event the tunnel acts on was published
    # after the commit and matches the session.
    cut = [e for e in world.events if e.kind == RevocationKind.USER_REENROLLED]
    assert [e.user_id for e in cut] == [tech.id]
    remote = db.get(RemoteSession, session_id)
    assert cut[0].affects(remote_sessions.as_live(remote))

    # The customer that named the technician reads the re-enrolment in its own log;
    # a customer with no grant does not.
    gp_log = Api(client, world.gp_admin).get("/audit/events?action=account.reenrolled")
    events = gp_log.json()["events"]
    assert [(e["actor_name"], e["customer_org_id"]) for e in events] == [
        ("tekniker", str(world.gp.id))
    ]
    assert events[0]["details"]["link_issued_by"] == "vendor-admin"
    assert events[0]["details"]["factors_replaced"] == 1
    assert events[0]["details"]["login_sessions_ended"] >= 2
    vendor_log = Api(client, world.vendor_admin).get("/audit/events?action=account.reenrolled")
    # The vendor's log holds its own line and the copy written for the customer.
    assert {e["customer_org_id"] for e in vendor_log.json()["events"]} == {
        str(world.vendor.id),
        str(world.gp.id),
    }
    other = Api(client, bystander_admin).get("/audit/events?action=account.")
    assert [e for e in other.json()["events"] if "tekniker" in str(e["details"])] == []

    # Whoever logs in as the technician next is told, before anything else: the CLI
    # finds the notice in /me, the browser is taken to it.
    holder = _holder(world, tech, STOLEN_PASSWORD, secret)
    holder_api = Api(client, holder)
    notices = holder_api.get("/me").json()["notices"]
    assert [n["kind"] for n in notices] == ["account_reenrolled"]
    assert "vendor-admin" in notices[0]["text"]
    with TestClient(client.app, base_url="http://testserver", follow_redirects=False) as web:
        page = web.get("/login")
        r = web.post(
            "/login",
            data={
                "username": holder.username,
                "password": holder.password,
                "csrf_token": csrf_from(page.text),
                "next": "/console",
            },
        )
        assert r.status_code == 303, r.text
        r = web.post(
            "/login/factor",
            data={"code": holder.code(), "next": "/console", "csrf_token": csrf_from(page.text)},
        )
        assert r.status_code == 303
        assert r.headers["location"].startswith("/account/notices")
        notice = web.get(r.headers["location"], headers={"Accept-Language": "en"})
        assert "enrolled again" in notice.text and "vendor-admin" in notice.text
        # Once read, the login goes where it was going, and the notice is gone.
        r = web.post(
            re.search(r'action="(/account/notices/[^"]+/dismiss)"', notice.text).group(1),
            data={"csrf_token": csrf_from(notice.text), "next": "/console"},
        )
        assert web.get(r.headers["location"]).headers["location"] == "/console"
    assert holder_api.get("/me").json()["notices"] == []
    # The notice was the person's: the vendor's admins never had it among their own.
    vendor_notes = Api(client, world.vendor_admin).get("/notifications").json()
    assert "account_reenrolled" not in [n["kind"] for n in vendor_notes]


# -- the command line goes through the same service -------------------------------------


def _cli(world: World, *args: str):  # type: ignore[no-untyped-def]
    settings = world.state.settings
    return CliRunner().invoke(
        admin_cli.app,
        [
            *args,
            "--data-dir",
            str(settings.data_dir),
            "--database-url",
            settings.effective_database_url,
        ],
    )


def test_command_line_re_enrolment_is_a_re_enrolment_too(client, world: World) -> None:
    """The command line may manage every account (it holds the server's keys), but a
    link it prints for an active account has the same consequences, seen alike."""
    tech = world.tech.user
    world.db.rollback()
    result = _cli(world, "enrolment-link", tech.username)
    assert result.exit_code == 0, result.output
    link = result.stdout.strip().splitlines()[-1]
    assert "/enroll/" in link
    # The GP office's grant is open to all the vendor's technicians: it sees the link.
    issued = _events(world.db, "account.enrolment_link.issued", customer_org_id=world.gp.id)
    assert [e.actor_name for e in issued] == ["command-line"]

    status, _ = _use_link(client, link, STOLEN_PASSWORD)
    assert status == 303
    world.db.rollback()
    world.db.expire_all()
    assert len(world.db.get(User, tech.id).confirmed_factors) == 1
    assert not world.state.login.passwords.verify(
        world.db.get(User, tech.id).password_hash, world.tech.password
    )
    seen_by = {e.customer_org_id for e in _events(world.db, "account.reenrolled")}
    assert seen_by == {world.vendor.id, world.gp.id}
    assert [e.kind for e in world.events] == [RevocationKind.USER_REENROLLED]


def test_command_line_gives_no_link_to_a_deactivated_account(world: World) -> None:
    members.deactivate(world.db, world.caller(world.vendor_admin), world.tech.user.id)
    world.db.commit()
    result = _cli(world, "enrolment-link", world.tech.username)
    assert result.exit_code == 2
    assert "/enroll/" not in result.output
    assert result.output.startswith(f"{world.tech.username}: ")
    assert "member.link_needs_active" not in result.output  # the sentence, not its key
    assert _links_for(world.db, world.tech.user) == 0
    # The refusal is audited by the service and kept by the command, as on the web.
    (refused,) = _events(world.db, "account.enrolment_link.issued", outcome="denied")
    assert (refused.reason, refused.actor_name) == ("member.link_needs_active", "command-line")
