"""portal.access.decide: allowed with what the grant says, and every refusal reason."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from fjernhjelp.audit.models import AuditEvent
from fjernhjelp.auth.models import UserStatus
from fjernhjelp.portal import access, agreements, grants, members, organisations, policy
from fjernhjelp.portal.access import AccessAllowed, AccessDenied, DenyReason, decide
from fjernhjelp.portal.models import AgreementStatus, OrgKind, Permission
from fjernhjelp.portal.policy import Policy
from tests.helpers import make_org, make_user
from tests.portal.world import ATTENDED, CLAUSE, World, publish_terms


def _ask(world: World, account=None, group_id=None, support=False):
    account = account or world.tech
    world.db.expire_all()
    return decide(
        world.db,
        account.user,
        group_id or world.group.id,
        world.state.now(),
        support=support,
    )


def _denied(world: World, reason: DenyReason, **kw) -> AccessDenied:
    decision = _ask(world, **kw)
    assert isinstance(decision, AccessDenied), decision
    assert decision.allowed is False
    assert decision.reason is reason
    return decision


def test_attended_grant_allows_with_its_permissions_and_consent(world: World) -> None:
    decision = _ask(world)
    assert isinstance(decision, AccessAllowed) and decision.allowed
    assert decision.grant_id == world.grant.id
    assert decision.agreement_id == world.agreement.id
    assert decision.agreement_reference == "Avtale 2026-17"
    assert decision.permissions == ATTENDED
    assert decision.consent_required is True and decision.preapproval_clause is None
    assert decision.valid_until == world.agreement.valid_until
    session = decision.live_session()
    assert (session.customer_org_id, session.vendor_org_id) == (world.gp.id, world.vendor.id)


def test_preapproved_grant_carries_the_clause_but_support_always_asks(world: World) -> None:
    grants.revoke(world.db, world.caller(world.gp_admin), world.grant.id)
    world.db.commit()
    agreement = world.record_agreement(
        reference="Vedlikehold 2026", allows_preapproved=True, preapproved_clause=CLAUSE
    )
    expiry = world.state.now() + timedelta(days=30)
    world.make_grant(agreement, consent_required=False, expires_at=expiry)
    decision = _ask(world)
    assert isinstance(decision, AccessAllowed)
    assert decision.consent_required is False and decision.preapproval_clause == CLAUSE
    assert decision.valid_until == expiry
    support = _ask(world, support=True)
    assert isinstance(support, AccessAllowed) and support.support
    assert support.consent_required is True and support.preapproval_clause is None


def test_pending_technician_has_no_second_factor(world: World) -> None:
    pending = make_user(
        world.db,
        world.state,
        world.vendor,
        "ny-tekniker",
        with_totp=False,
        status=UserStatus.PENDING,
    )
    world.db.commit()
    _denied(world, DenyReason.NO_SECOND_FACTOR, account=pending)


def test_active_account_without_a_confirmed_factor_is_refused(world: World) -> None:
    bare = make_user(world.db, world.state, world.vendor, "uten-faktor", with_totp=False)
    world.db.commit()
    _denied(world, DenyReason.NO_SECOND_FACTOR, account=bare)


def test_suspended_technician(world: World) -> None:
    members.suspend(world.db, world.caller(world.operator), world.tech.user.id)
    world.db.commit()
    _denied(world, DenyReason.USER_SUSPENDED)


def test_deactivated_technician(world: World) -> None:
    members.deactivate(world.db, world.caller(world.vendor_admin), world.tech.user.id)
    world.db.commit()
    _denied(world, DenyReason.USER_DEACTIVATED)


def test_vendor_admin_who_is_not_a_technician(world: World) -> None:
    _denied(world, DenyReason.NOT_A_TECHNICIAN, account=world.vendor_admin)


def test_suspended_vendor_and_suspended_customer(world: World) -> None:
    organisations.suspend(world.db, world.caller(world.operator), world.gp.id)
    world.db.commit()
    denied = _denied(world, DenyReason.ORGANISATION_SUSPENDED)
    assert denied.customer_org_id == world.gp.id
    organisations.resume(world.db, world.caller(world.operator), world.gp.id)
    organisations.suspend(world.db, world.caller(world.operator), world.vendor.id)
    world.db.commit()
    assert _denied(world, DenyReason.ORGANISATION_SUSPENDED).customer_org_id is None


def test_vendor_that_no_longer_gives_help(world: World) -> None:
    policy.set_policy(
        world.db, world.caller(world.operator), world.vendor.id, Policy(True, True, False)
    )
    world.db.commit()
    _denied(world, DenyReason.VENDOR_NOT_GIVING_HELP)


def test_customer_that_no_longer_receives_help(world: World) -> None:
    policy.set_policy(
        world.db, world.caller(world.operator), world.gp.id, Policy(True, False, True)
    )
    world.db.commit()
    _denied(world, DenyReason.CUSTOMER_NOT_RECEIVING_HELP)


def test_access_disabled_by_policy_still_allows_support(world: World) -> None:
    policy.set_policy(
        world.db, world.caller(world.operator), world.gp.id, Policy(False, True, False)
    )
    world.db.commit()
    _denied(world, DenyReason.ACCESS_DISABLED_BY_POLICY)
    assert isinstance(_ask(world, support=True), AccessAllowed)


def test_municipality_starts_support_only(db, state) -> None:
    org = make_org(db, "Fjordbyen kommune", kind=OrgKind.MUNICIPALITY)
    assert org.access_enabled is False


def test_new_terms_for_giving_must_be_accepted_again(world: World) -> None:
    publish_terms(world.db, world.state, world.operator, "giving")
    world.db.commit()
    _denied(world, DenyReason.TERMS_NOT_ACCEPTED_GIVING)


def test_new_terms_for_receiving_must_be_accepted_again(world: World) -> None:
    publish_terms(world.db, world.state, world.operator, "receiving")
    world.db.commit()
    _denied(world, DenyReason.TERMS_NOT_ACCEPTED_RECEIVING)


def test_no_grant_for_an_unknown_group_another_group_or_another_vendor(world: World) -> None:
    _denied(world, DenyReason.NO_GRANT, group_id=uuid.uuid4())
    other_gp = make_org(world.db, "Tannlegen")
    from fjernhjelp.portal import groups

    other_group = groups.ensure_default(world.db, other_gp, world.caller(world.operator).actor)
    world.db.commit()
    denied = _denied(world, DenyReason.NO_GRANT, group_id=other_group.id)
    assert denied.customer_org_id is None
    rival = make_org(world.db, "Konkurrent AS", kind=OrgKind.VENDOR, receives=False, gives=True)
    rival_admin = make_user(world.db, world.state, rival, "rival-admin", admin=True)
    rival_tech = make_user(world.db, world.state, rival, "rival-tech")
    world.db.commit()
    from fjernhjelp.portal import terms

    terms.accept(world.db, world.caller(rival_admin), "giving")
    world.db.commit()
    # The rival knows the group id: still exactly what an unknown id answers.
    denied = _denied(world, DenyReason.NO_GRANT, account=rival_tech)
    assert denied.customer_org_id is None and denied.grant_id is None


def test_revoked_grant(world: World) -> None:
    grants.revoke(world.db, world.caller(world.gp_admin), world.grant.id)
    world.db.commit()
    assert _denied(world, DenyReason.GRANT_REVOKED).grant_id == world.grant.id


def test_grant_expired_before_and_after_the_sweep(world: World, clock) -> None:
    grants.revoke(world.db, world.caller(world.gp_admin), world.grant.id)
    world.db.commit()
    world.make_grant(expires_at=world.state.now() + timedelta(days=10))
    clock.advance(days=11)
    _denied(world, DenyReason.GRANT_EXPIRED)
    from fjernhjelp.portal import sweep

    sweep.run(world.db, world.state.now(), inactive_after=timedelta(days=365))
    world.db.commit()
    _denied(world, DenyReason.GRANT_EXPIRED)


def test_revoked_agreement(world: World) -> None:
    agreements.revoke(world.db, world.caller(world.gp_admin), world.agreement.id)
    world.db.commit()
    _denied(world, DenyReason.AGREEMENT_REVOKED)


def test_expired_agreement(world: World, clock) -> None:
    clock.advance(days=366)
    _denied(world, DenyReason.AGREEMENT_EXPIRED)


def test_agreement_not_yet_valid_fails_closed(world: World) -> None:
    # Only a changed record gets here (grants need an agreement in force).
    world.agreement.valid_from = world.state.now() + timedelta(days=2)
    world.db.commit()
    _denied(world, DenyReason.AGREEMENT_NOT_YET_VALID)


def test_technician_not_named(world: World) -> None:
    colleague = make_user(world.db, world.state, world.vendor, "kollega")
    world.db.commit()
    grants.update(
        world.db,
        world.caller(world.gp_admin),
        world.grant.id,
        grants.GrantTerms(permissions=ATTENDED, technician_ids=frozenset({colleague.user.id})),
    )
    world.db.commit()
    _denied(world, DenyReason.TECHNICIAN_NOT_NAMED)
    assert isinstance(_ask(world, account=colleague), AccessAllowed)


def test_staff_outside_eea_only_where_the_agreement_allows(world: World) -> None:
    members.set_outside_eea(world.db, world.caller(world.vendor_admin), world.tech.user.id, True)
    world.db.commit()
    _denied(world, DenyReason.STAFF_OUTSIDE_EEA)
    grants.revoke(world.db, world.caller(world.gp_admin), world.grant.id)
    world.db.commit()
    agreement = world.record_agreement(reference="Global support", non_eea_staff_allowed=True)
    world.make_grant(agreement)
    assert isinstance(_ask(world), AccessAllowed)


def test_every_reason_is_tested() -> None:
    # What an agreement covers has its own module of tests.
    here = Path(__file__)
    source = "".join(
        f.read_text(encoding="utf-8") for f in (here, here.with_name("test_agreement_covers.py"))
    )
    untested = [r for r in DenyReason if f"DenyReason.{r.name}" not in source]
    assert untested == []


@pytest.mark.parametrize("allowed", [True, False])
def test_decisions_are_audited_with_reason(world: World, allowed: bool) -> None:
    if not allowed:
        grants.revoke(world.db, world.caller(world.gp_admin), world.grant.id)
        world.db.commit()
    decision = _ask(world)
    access.audit_decision(world.db, decision, world.tech.user, source_address="198.51.100.7")
    world.db.commit()
    event = world.db.execute(
        select(AuditEvent).where(AuditEvent.action == "access.requested")
    ).scalar_one()
    assert event.outcome == ("success" if allowed else "denied")
    assert event.reason == (None if allowed else "grant_revoked")
    assert event.customer_org_id == world.gp.id
    assert event.actor_org_id == world.vendor.id and event.source_address == "198.51.100.7"


def test_refusal_for_a_stranger_names_no_customer_in_the_audit(world: World) -> None:
    decision = _ask(world, group_id=uuid.uuid4())
    event = access.audit_decision(world.db, decision, world.tech.user)
    world.db.commit()
    assert event.reason == "no_grant" and event.customer_org_id is None


def test_agreement_status_expired_by_sweep_is_refused_even_if_times_say_valid(world: World) -> None:
    world.agreement.status = AgreementStatus.EXPIRED
    world.db.commit()
    _denied(world, DenyReason.AGREEMENT_EXPIRED)


def test_permissions_come_from_the_grant(world: World) -> None:
    grants.update(
        world.db,
        world.caller(world.gp_admin),
        world.grant.id,
        grants.GrantTerms(permissions=frozenset({Permission.TERMINAL, Permission.FILES})),
    )
    world.db.commit()
    decision = _ask(world)
    assert isinstance(decision, AccessAllowed)
    assert decision.permissions == {Permission.TERMINAL, Permission.FILES}


def test_a_grant_row_with_the_clipboard_but_no_control_gives_no_clipboard(world: World) -> None:
    """The server's half of "off in view-only": a row the portal's rules would refuse
    (written before them, or by hand) still yields a ticket without the clipboard."""
    world.grant.may_control = False
    world.grant.may_clipboard = True
    world.db.commit()
    decision = _ask(world)
    assert isinstance(decision, AccessAllowed)
    assert Permission.VIEW in decision.permissions
    assert Permission.CLIPBOARD not in decision.permissions
    world.grant.may_control = True
    world.db.commit()
    decision = _ask(world)
    assert isinstance(decision, AccessAllowed)
    assert {Permission.CONTROL, Permission.CLIPBOARD} <= decision.permissions
