"""People in an organisation: invitations, admin rights, deactivation, suspension."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import select

from fjernhjelp.audit.models import AuditEvent
from fjernhjelp.auth import login
from fjernhjelp.auth.logins import ClientInfo
from fjernhjelp.auth.models import UserStatus
from fjernhjelp.portal import members, terms
from fjernhjelp.portal.errors import Conflict, NotAllowed, NotFound, PortalError
from fjernhjelp.portal.revocations import RevocationKind
from tests.helpers import make_org, make_user
from tests.portal.world import World, publish_terms

LINK = timedelta(hours=72)


def _invite(world: World, **kw):
    invitation = members.invite(
        world.db,
        world.caller(world.vendor_admin),
        username=kw.pop("username", "ny-tekniker"),
        email="ny@example.no",
        display_name="Ny Tekniker",
        link_lifetime=LINK,
        **{"technician": True, **kw},
    )
    world.db.commit()
    return invitation


def test_invited_technician_is_pending_and_cannot_log_in(world: World) -> None:
    invitation = _invite(world)
    user = invitation.user
    assert user.status == UserStatus.PENDING and user.password_hash is None
    assert invitation.link("https://fjernhjelp.example").startswith(
        "https://fjernhjelp.example/enroll/"
    )
    with pytest.raises(login.LoginRefused):
        login.begin(world.db, world.state.login, user.username, "", ClientInfo(), world.state.now())


def test_technicians_only_in_a_vendor_that_accepted_the_giving_terms(world: World) -> None:
    with pytest.raises(PortalError) as info:
        members.invite(
            world.db,
            world.caller(world.gp_admin),
            username="x-tech",
            email="x@example.no",
            display_name="X",
            technician=True,
            link_lifetime=LINK,
        )
    assert info.value.reason == "terms.accept_giving_first"
    world.db.rollback()
    publish_terms(world.db, world.state, world.operator, "giving")
    world.db.commit()
    with pytest.raises(PortalError) as info:
        _invite(world)
    assert info.value.reason == "terms.accept_giving_first"
    world.db.rollback()
    terms.accept(world.db, world.caller(world.vendor_admin), "giving")
    world.db.commit()
    assert _invite(world).user.is_technician


def test_bad_invitations(world: World) -> None:
    for kw, key in (
        ({"technician": False}, "member.no_role"),
        ({"username": "tekniker"}, "account.username_taken"),
        ({"username": "a b"}, "account.bad_username"),
    ):
        with pytest.raises(PortalError) as info:
            _invite(world, **kw)
        assert info.value.reason == key
        world.db.rollback()


def test_delegating_and_withdrawing_admin_never_the_last(world: World) -> None:
    caller = world.caller(world.gp_admin)
    colleague = make_user(world.db, world.state, world.gp, "kollega", technician=False)
    world.db.commit()
    members.set_admin(world.db, caller, colleague.user.id, True)
    world.db.commit()
    event = world.db.execute(
        select(AuditEvent).where(AuditEvent.action == "account.admin_granted")
    ).scalar_one()
    details = json.loads(event.details)
    assert details["before"]["roles"] == [] and details["after"]["roles"] == ["admin"]
    members.set_admin(world.db, caller, world.gp_admin.user.id, False)
    world.db.commit()
    with pytest.raises(Conflict):
        members.set_admin(world.db, world.caller(colleague), colleague.user.id, False)


def test_admins_change_only_their_own_organisations_people(world: World) -> None:
    for action in (
        lambda c: members.set_admin(world.db, c, world.tech.user.id, True),
        lambda c: members.deactivate(world.db, c, world.tech.user.id),
        lambda c: members.get_member(world.db, c, world.tech.user.id),
        lambda c: members.new_link(world.db, c, world.tech.user.id, link_lifetime=LINK),
        lambda c: members.list_members(world.db, c, world.vendor.id),
    ):
        with pytest.raises(NotFound):
            action(world.caller(world.gp_admin))
    with pytest.raises(NotAllowed):
        members.suspend(world.db, world.caller(world.vendor_admin), world.tech.user.id)
    with pytest.raises(NotAllowed):
        members.list_members(world.db, world.caller(world.tech))


def test_deactivating_ends_sessions_and_announces(world: World) -> None:
    members.deactivate(world.db, world.caller(world.vendor_admin), world.tech.user.id)
    world.db.commit()
    assert world.tech.user.status == UserStatus.DISABLED
    assert [e.kind for e in world.events] == [RevocationKind.USER_DEACTIVATED]
    with pytest.raises(PortalError):
        members.deactivate(world.db, world.caller(world.vendor_admin), world.vendor_admin.user.id)
    world.db.rollback()
    members.reactivate(world.db, world.caller(world.vendor_admin), world.tech.user.id)
    world.db.commit()
    assert world.tech.user.status == UserStatus.ACTIVE


def test_only_the_operator_lifts_a_suspension(world: World) -> None:
    members.suspend(world.db, world.caller(world.operator), world.tech.user.id)
    world.db.commit()
    with pytest.raises(PortalError):
        members.deactivate(world.db, world.caller(world.vendor_admin), world.tech.user.id)
    world.db.rollback()
    with pytest.raises(PortalError):
        members.reactivate(world.db, world.caller(world.vendor_admin), world.tech.user.id)
    world.db.rollback()
    members.unsuspend(world.db, world.caller(world.operator), world.tech.user.id)
    world.db.commit()
    assert world.tech.user.status == UserStatus.ACTIVE


def test_operator_reads_any_organisations_people(world: World) -> None:
    names = {
        u.username
        for u in members.list_members(world.db, world.caller(world.operator), world.vendor.id)
    }
    assert names == {"vendor-admin", "tekniker"}


def test_a_vendor_technician_outside_eea_is_marked_and_audited(world: World) -> None:
    user = _invite(world, username="remote-tech", outside_eea=True).user
    assert user.outside_eea
    event = world.db.execute(
        select(AuditEvent).where(AuditEvent.action == "account.changed")
    ).scalar_one()
    assert json.loads(event.details)["after"]["outside_eea"] is True


def test_another_org_of_same_name_is_still_another_org(db, state) -> None:
    a = make_org(db, "Same")
    b = make_org(db, "Same")
    admin_a = make_user(db, state, a, "a-admin", admin=True, technician=False)
    user_b = make_user(db, state, b, "b-user", technician=False)
    db.commit()
    from fjernhjelp.caller import Caller

    with pytest.raises(NotFound):
        members.get_member(db, Caller.of_person(admin_a.user, state.now()), user_b.user.id)
