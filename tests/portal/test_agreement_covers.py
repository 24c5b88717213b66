"""What an agreement covers (Support, Access or both) decides which kind of help a vendor
may give: Access under grants only where it covers Access, Support for a customer only
where an agreement in force covers Support. Municipalities start with Support only."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from fjernhjelp.audit.models import AuditEvent
from fjernhjelp.portal import agreements, grants, groups, policy, terms
from fjernhjelp.portal.access import AccessAllowed, AccessDenied, DenyReason, decide
from fjernhjelp.portal.errors import PortalError
from fjernhjelp.portal.grants import GrantTerms
from fjernhjelp.portal.models import AgreementCovers, AgreementKind, Grant, OrgKind
from fjernhjelp.portal.policy import Policy
from fjernhjelp.portal.support import (
    SupportAllowed,
    SupportDenied,
    decide_support,
    support_customers,
)
from tests.helpers import make_org, make_user
from tests.portal.world import ATTENDED, World


def _only(world: World, covers: str) -> None:
    """End the world's agreement and grant; record one that covers ``covers``, with a
    grant on the group resting on it."""
    grants.revoke(world.db, world.caller(world.gp_admin), world.grant.id)
    agreements.revoke(world.db, world.caller(world.gp_admin), world.agreement.id)
    world.db.commit()
    if covers != "support":
        world.agreement = world.record_agreement(reference=f"Avtale {covers}", covers=covers)
        world.grant = world.make_grant(world.agreement)
        return
    # grants.create refuses a grant under a Support-only agreement (tested below), so the
    # grant is made under one for both and the row then says Support only: the access
    # decision must refuse such a grant however it came to be (an edited row, a restore).
    world.agreement = world.record_agreement(reference=f"Avtale {covers}", covers="both")
    world.grant = world.make_grant(world.agreement)
    world.agreement.covers = AgreementCovers.SUPPORT
    world.db.commit()


def _access(world: World) -> AccessAllowed | AccessDenied:
    world.db.expire_all()
    return decide(world.db, world.tech.user, world.group.id, world.state.now())


def _support(world: World, customer: uuid.UUID | None = None) -> SupportAllowed | SupportDenied:
    world.db.expire_all()
    return decide_support(world.db, world.tech.user, customer or world.gp.id, world.state.now())


def test_an_agreement_for_both_allows_access_and_support(world: World) -> None:
    assert isinstance(_access(world), AccessAllowed)
    allowed = _support(world)
    assert isinstance(allowed, SupportAllowed)
    assert allowed.agreement_id == world.agreement.id
    assert allowed.agreement_reference == "Avtale 2026-17"
    assert (allowed.customer_org_id, allowed.vendor_org_id) == (world.gp.id, world.vendor.id)
    assert allowed.valid_until == world.agreement.valid_until
    assert [o.id for o in support_customers(world.db, world.tech.user, world.state.now())] == [
        world.gp.id
    ]


def test_access_under_a_support_only_agreement_is_refused(world: World) -> None:
    _only(world, "support")
    denied = _access(world)
    assert isinstance(denied, AccessDenied)
    assert denied.reason is DenyReason.AGREEMENT_NOT_FOR_ACCESS
    assert isinstance(_support(world), SupportAllowed)


def test_support_under_an_access_only_agreement_is_refused(world: World) -> None:
    _only(world, "access")
    assert isinstance(_access(world), AccessAllowed)
    denied = _support(world)
    assert isinstance(denied, SupportDenied)
    assert denied.reason is DenyReason.NO_SUPPORT_AGREEMENT
    # The old per-group path for Support says the same thing in its own words.
    via_group = decide(world.db, world.tech.user, world.group.id, world.state.now(), support=True)
    assert isinstance(via_group, AccessDenied)
    assert via_group.reason is DenyReason.AGREEMENT_NOT_FOR_SUPPORT
    assert support_customers(world.db, world.tech.user, world.state.now()) == []


def test_support_for_a_stranger_answers_like_an_unknown_id(world: World) -> None:
    stranger = make_org(world.db, "Tannlegen i Nabobyen", kind=OrgKind.DENTIST)
    world.db.commit()
    for customer in (stranger.id, uuid.uuid4()):
        denied = _support(world, customer)
        assert isinstance(denied, SupportDenied)
        assert denied.reason is DenyReason.NO_SUPPORT_AGREEMENT
        assert denied.customer_org_id is None


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ("revoked", DenyReason.NO_SUPPORT_AGREEMENT),
        ("expired", DenyReason.NO_SUPPORT_AGREEMENT),
        ("customer_stops_receiving", DenyReason.CUSTOMER_NOT_RECEIVING_HELP),
        ("technician_outside_eea", DenyReason.STAFF_OUTSIDE_EEA),
    ],
)
def test_support_refusals(world: World, change: str, reason: DenyReason) -> None:
    if change == "revoked":
        agreements.revoke(world.db, world.caller(world.gp_admin), world.agreement.id)
    elif change == "expired":
        world.state.clock = lambda: world.agreement.valid_until + timedelta(seconds=1)  # type: ignore[operator]
    elif change == "customer_stops_receiving":
        policy.set_policy(
            world.db, world.caller(world.operator), world.gp.id, Policy(True, False, True)
        )
    else:
        world.tech.user.outside_eea = True
    world.db.commit()
    denied = _support(world)
    assert isinstance(denied, SupportDenied) and denied.reason is reason


def test_a_municipality_gets_support_and_not_access_until_the_operator_turns_it_on(
    world: World,
) -> None:
    municipality = make_org(world.db, "Fjordbyen kommune", kind=OrgKind.MUNICIPALITY)
    admin = make_user(world.db, world.state, municipality, "kommune-admin", admin=True,
                      technician=False)  # fmt: skip
    world.db.commit()
    assert municipality.access_enabled is False
    terms.accept(world.db, world.caller(admin), "receiving")
    agreement = agreements.record(
        world.db,
        world.caller(admin),
        agreements.AgreementSpec(
            vendor_org_id=world.vendor.id,
            kind=AgreementKind.REMOTE_SUPPORT.value,
            reference="Kommuneavtale 1",
            valid_from=world.state.now() - timedelta(days=1),
            valid_until=None,
            covers="both",
        ),
    )
    group = groups.ensure_default(world.db, municipality, world.caller(admin).actor)
    world.db.commit()
    grants.create(
        world.db,
        world.caller(admin),
        group_id=group.id,
        agreement_id=agreement.id,
        wanted=GrantTerms(permissions=ATTENDED),
    )
    world.db.commit()
    world.db.expire_all()
    access = decide(world.db, world.tech.user, group.id, world.state.now())
    assert isinstance(access, AccessDenied)
    assert access.reason is DenyReason.ACCESS_DISABLED_BY_POLICY
    assert isinstance(_support(world, municipality.id), SupportAllowed)

    policy.set_policy(
        world.db, world.caller(world.operator), municipality.id, Policy(True, True, False)
    )
    world.db.commit()
    world.db.expire_all()
    assert isinstance(decide(world.db, world.tech.user, group.id, world.state.now()),
                      AccessAllowed)  # fmt: skip


def test_an_unknown_coverage_is_refused_and_audited(world: World) -> None:
    with pytest.raises(PortalError) as refused:
        world.record_agreement(reference="Uklar avtale", covers="everything")
    assert refused.value.reason == "agreement.bad_covers"
    world.db.commit()
    event = world.db.execute(
        select(AuditEvent).where(
            AuditEvent.outcome == "denied", AuditEvent.reason == "agreement.bad_covers"
        )
    ).scalar_one()
    assert event.actor_name == "gp-admin"


def test_the_recorded_coverage_is_in_the_audit_event(world: World) -> None:
    event = (
        world.db.execute(select(AuditEvent).where(AuditEvent.action == "agreement.recorded"))
        .scalars()
        .first()
    )
    assert event is not None
    details = json.loads(event.details)
    assert details["after"]["covers"] == "both"


# -- grants rest only on agreements that cover Access ------------------------------------


def _grant_count(world: World) -> int:
    world.db.expire_all()
    return world.db.execute(select(func.count()).select_from(Grant)).scalar_one()


def _support_only(world: World) -> uuid.UUID:
    """A second agreement, Support only, beside the world's (which covers both)."""
    return world.record_agreement(reference="Bare Support", covers="support").id


def test_a_grant_under_a_support_only_agreement_is_refused_and_audited(world: World) -> None:
    support_only = _support_only(world)
    other = groups.create(world.db, world.caller(world.gp_admin), "Resepsjonen")
    world.db.commit()
    before = _grant_count(world)
    with pytest.raises(PortalError) as refused:
        grants.create(
            world.db,
            world.caller(world.gp_admin),
            group_id=other.id,
            agreement_id=support_only,
            wanted=GrantTerms(permissions=ATTENDED),
        )
    assert refused.value.reason == "grant.agreement_support_only"
    assert refused.value.recorded  # the service wrote the refusal itself
    world.db.commit()
    assert _grant_count(world) == before
    event = world.db.execute(
        select(AuditEvent).order_by(AuditEvent.seq.desc()).limit(1)
    ).scalar_one()
    assert (event.action, event.outcome, event.reason) == (
        "grant.created",
        "denied",
        "grant.agreement_support_only",
    )
    assert event.customer_org_id == world.gp.id
    assert event.actor_name == "gp-admin"
    # The same terms under an agreement that covers Access are given.
    world.make_grant(world.agreement, group=other)
    assert _grant_count(world) == before + 1
