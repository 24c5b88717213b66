"""Terms of use: versions, acceptance per role, and a new version needing acceptance."""

from __future__ import annotations

import pytest

from fjernhjelp.caller import Caller
from fjernhjelp.portal import terms
from fjernhjelp.portal.errors import NotAllowed, PortalError
from fjernhjelp.portal.models import Audience
from tests.portal.world import World, publish_terms


def test_acceptance_records_who_when_and_which_version(world: World) -> None:
    st = terms.status(world.db, world.gp.id, Audience.RECEIVING)
    assert st.ok and st.current.version == 1
    assert st.accepted.accepted_by_name == "Gp-Admin (gp-admin)"
    assert st.accepted.accepted_at is not None


def test_a_new_version_must_be_accepted_again(world: World) -> None:
    publish_terms(world.db, world.state, world.operator, "receiving")
    world.db.commit()
    st = terms.status(world.db, world.gp.id, Audience.RECEIVING)
    assert not st.ok and st.current.version == 2 and st.previous.terms.version == 1
    assert not terms.accepted_current(world.db, world.gp.id, Audience.RECEIVING)
    # Giving terms are separate and untouched.
    assert terms.accepted_current(world.db, world.vendor.id, Audience.GIVING)
    terms.accept(world.db, world.caller(world.gp_admin), "receiving")
    world.db.commit()
    assert terms.accepted_current(world.db, world.gp.id, Audience.RECEIVING)


def test_accepting_twice_changes_nothing(world: World) -> None:
    first = terms.status(world.db, world.gp.id, Audience.RECEIVING).accepted
    again = terms.accept(world.db, world.caller(world.gp_admin), "receiving")
    assert again.id == first.id


def test_only_the_operator_publishes_and_only_for_your_role(world: World) -> None:
    with pytest.raises(NotAllowed):
        terms.publish(
            world.db,
            world.caller(world.gp_admin),
            audience="receiving",
            title="Mine vilkår",
            body_nb="x",
        )
    with pytest.raises(NotAllowed):  # a GP office does not give help
        terms.accept(world.db, world.caller(world.gp_admin), "giving")
    with pytest.raises(NotAllowed):  # a technician is not an admin
        terms.accept(world.db, world.caller(world.tech), "giving")


def test_bad_terms_and_no_terms(db, state) -> None:
    from tests.helpers import make_org, make_user

    org = make_org(db)
    admin = make_user(db, state, org, "admin", admin=True, technician=False)
    op_org = make_org(db, "Drift", receives=False)
    op = make_user(db, state, op_org, "op", operator=True, technician=False)
    db.commit()
    with pytest.raises(PortalError) as info:
        terms.accept(db, Caller.of_person(admin.user, state.now()), "receiving")
    assert info.value.reason == "terms.none_published"
    with pytest.raises(PortalError) as info:
        terms.publish(
            db, Caller.of_person(op.user, state.now()), audience="both", title="x", body_nb="y"
        )
    assert info.value.reason == "terms.bad_audience"
    with pytest.raises(PortalError) as info:
        terms.publish(
            db, Caller.of_person(op.user, state.now()), audience="giving", title="", body_nb="y"
        )
    assert info.value.reason == "terms.bad_title"
