"""Agreement rules: who records them, what they must say, and what revoking does."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from fjernhjelp.portal import agreements
from fjernhjelp.portal.errors import NotAllowed, NotFound, PortalError
from fjernhjelp.portal.models import Agreement, OrgKind
from fjernhjelp.portal.revocations import RevocationKind
from tests.helpers import make_org, make_user
from tests.portal.world import CLAUSE, World


def _count(world: World) -> int:
    return world.db.execute(select(func.count()).select_from(Agreement)).scalar_one()


DAY = timedelta(days=1)


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        (lambda now: {"reference": "   "}, "agreement.bad_reference"),
        (lambda now: {"kind": "handshake"}, "agreement.bad_kind"),
        (
            lambda now: {"allows_preapproved": True, "preapproved_clause": " "},
            "agreement.clause_required",
        ),
        (lambda now: {"valid_until": now - 2 * DAY}, "agreement.ends_before_start"),
        (
            lambda now: {"valid_from": now - 30 * DAY, "valid_until": now - DAY},
            "agreement.already_ended",
        ),
    ],
)
def test_bad_agreements_are_refused(world: World, overrides, key: str) -> None:
    before = _count(world)
    with pytest.raises(PortalError) as info:
        world.record_agreement(**overrides(world.state.now()))
    assert info.value.reason == key
    world.db.rollback()
    assert _count(world) == before


def test_clause_is_kept_only_where_preapproval_is_allowed(world: World) -> None:
    agreement = world.record_agreement(allows_preapproved=False, preapproved_clause=CLAUSE)
    assert agreement.preapproved_clause is None
    agreement = world.record_agreement(allows_preapproved=True, preapproved_clause=CLAUSE)
    assert agreement.preapproved_clause == CLAUSE


def test_vendor_must_give_help_and_not_be_yourself(world: World) -> None:
    other_gp = make_org(world.db, "Tannlegen")
    world.db.commit()
    for vendor_id in (other_gp.id, world.gp.id):
        with pytest.raises(PortalError) as info:
            world.record_agreement(vendor_org_id=vendor_id)
        assert info.value.reason == "agreement.unknown_vendor"
        world.db.rollback()


def test_both_parties_read_it_strangers_do_not(world: World) -> None:
    rival = make_org(world.db, "Konkurrent AS", kind=OrgKind.VENDOR, receives=False, gives=True)
    rival_admin = make_user(world.db, world.state, rival, "rival-admin", admin=True)
    world.db.commit()
    for who in (world.gp_admin, world.vendor_admin):
        assert agreements.get_visible(world.db, world.caller(who), world.agreement.id)
    with pytest.raises(NotFound):
        agreements.get_visible(world.db, world.caller(rival_admin), world.agreement.id)
    with pytest.raises(NotAllowed):  # the vendor reads but cannot change it
        agreements.get_own(world.db, world.caller(world.vendor_admin), world.agreement.id)
    with pytest.raises(NotAllowed):
        agreements.list_as_customer(world.db, world.caller(world.tech))
    assert agreements.list_as_vendor(world.db, world.caller(rival_admin)) == []


def test_revoking_an_agreement_announces_every_grant_resting_on_it(world: World) -> None:
    agreements.revoke(world.db, world.caller(world.gp_admin), world.agreement.id)
    world.db.commit()
    (event,) = world.events
    assert event.kind is RevocationKind.AGREEMENT_REVOKED
    assert event.grant_ids == {world.grant.id}
    with pytest.raises(PortalError):
        agreements.revoke(world.db, world.caller(world.gp_admin), world.agreement.id)
