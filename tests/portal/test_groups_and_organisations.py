"""Groups of a receiving organisation; organisations and policy as the operator sets them."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from fjernhjelp.portal import groups, organisations, policy
from fjernhjelp.portal.errors import Conflict, NotAllowed, NotFound, PortalError
from fjernhjelp.portal.models import MachineGroup, OrgStatus
from fjernhjelp.portal.policy import Policy
from tests.helpers import make_org, make_user, valid_orgnr
from tests.portal.world import World


def test_groups_default_and_more(world: World) -> None:
    caller = world.caller(world.gp_admin)
    extra = groups.create(world.db, caller, "  Resepsjon  ")
    world.db.commit()
    assert extra.name == "Resepsjon"
    assert [g.name for g in groups.list_own(world.db, caller)] == ["Standard", "Resepsjon"]
    with pytest.raises(Conflict):
        groups.create(world.db, caller, "resepsjon")
    with pytest.raises(Conflict):
        groups.delete(world.db, caller, world.group.id)  # the default stays
    groups.rename(world.db, caller, extra.id, "Laboratoriet")
    groups.delete(world.db, caller, extra.id)
    world.db.commit()
    assert world.db.get(MachineGroup, extra.id) is None


def test_a_group_with_grant_history_stays(world: World) -> None:
    caller = world.caller(world.gp_admin)
    extra = groups.create(world.db, caller, "Lab")
    world.db.commit()
    from fjernhjelp.portal import grants

    grants.revoke(world.db, caller, world.grant.id)
    world.make_grant(group=extra)
    with pytest.raises(Conflict) as info:
        groups.delete(world.db, caller, extra.id)
    assert info.value.reason == "group.has_grants"


def test_other_organisations_groups_are_not_found(world: World) -> None:
    other = make_org(world.db, "Tannlegen")
    other_admin = make_user(world.db, world.state, other, "t-admin", admin=True, technician=False)
    world.db.commit()
    caller = world.caller(other_admin)
    for action in (
        lambda: groups.get_own(world.db, caller, world.group.id),
        lambda: groups.rename(world.db, caller, world.group.id, "Mine nå"),
        lambda: groups.delete(world.db, caller, world.group.id),
    ):
        with pytest.raises(NotFound):
            action()
    assert world.group not in groups.list_own(world.db, caller)
    with pytest.raises(NotAllowed):  # a vendor has no groups
        groups.list_own(world.db, world.caller(world.vendor_admin))


def test_register_validates_the_organisation_number(world: World) -> None:
    caller = world.caller(world.operator)
    for orgnr, key in (
        ("123456789", "organisation.bad_orgnr"),
        ("99000001", "organisation.bad_orgnr"),
        (world.gp.orgnr, "organisation.orgnr_taken"),
    ):
        with pytest.raises(PortalError) as info:
            organisations.register(
                world.db,
                caller,
                orgnr=orgnr,
                name="Ny",
                kind="dentist",
                receives_help=True,
                gives_help=False,
            )
        assert info.value.reason == key
        world.db.rollback()
    number = valid_orgnr()
    spaced = f"{number[:3]} {number[3:6]} {number[6:]}"
    org = organisations.register(
        world.db,
        caller,
        orgnr=spaced,
        name="Fjordbyen kommune",
        kind="municipality",
        receives_help=True,
        gives_help=False,
    )
    world.db.commit()
    assert org.orgnr == number and org.access_enabled is False
    assert groups.default_group(world.db, org.id) is not None
    with pytest.raises(NotAllowed):
        organisations.register(
            world.db,
            world.caller(world.gp_admin),
            orgnr=valid_orgnr(),
            name="x",
            kind="dentist",
            receives_help=True,
            gives_help=False,
        )


def test_operator_turns_access_on_for_a_municipality(world: World) -> None:
    caller = world.caller(world.operator)
    org = organisations.register(
        world.db,
        caller,
        orgnr=valid_orgnr(),
        name="Fjordbyen kommune",
        kind="municipality",
        receives_help=True,
        gives_help=False,
    )
    policy.set_policy(world.db, caller, org.id, Policy(True, True, False))
    world.db.commit()
    assert org.access_enabled
    with pytest.raises(NotAllowed):
        policy.set_policy(
            world.db, world.caller(world.gp_admin), world.gp.id, Policy(True, True, True)
        )


def test_suspending_an_organisation_ends_its_logins(world: World, client) -> None:
    from tests.server.test_pages_login import web_login

    web_login(client, world.tech)
    organisations.suspend(world.db, world.caller(world.operator), world.vendor.id)
    world.db.commit()
    assert world.vendor.status == OrgStatus.SUSPENDED
    assert client.get("/console").status_code == 303
    with pytest.raises(PortalError):
        organisations.suspend(
            world.db, world.caller(world.operator), world.operator.user.organisation_id
        )
    world.db.rollback()
    organisations.resume(world.db, world.caller(world.operator), world.vendor.id)
    world.db.commit()
    assert world.db.execute(select(MachineGroup)).first() is not None
