"""The one authorisation decision: may this technician reach this customer group now?

``decide()`` is what the server asks before it issues a tunnel ticket (and what it asks
again when a revocation event touches a running session). It reads, never writes; the
caller records the outcome with ``audit_decision()`` in its own transaction.

The order of the checks matters for what a refusal tells the technician. First their
own account and organisation; then whether their organisation has any grant on the group
at all (an unknown group and a group of a stranger answer the same ``no_grant``); only
when a grant ties the two organisations together do reasons about the customer side
(suspension, policy, terms, the grant and its agreement) appear.
"""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from fjernhjelp.audit.log import Actor, Outcome, record
from fjernhjelp.audit.models import AuditEvent
from fjernhjelp.auth.models import User, UserStatus
from fjernhjelp.portal import terms
from fjernhjelp.portal.models import (
    AgreementStatus,
    Audience,
    Grant,
    GrantStatus,
    Organisation,
    Permission,
)
from fjernhjelp.portal.revocations import LiveSession


class DenyReason(enum.StrEnum):
    NO_SECOND_FACTOR = "no_second_factor"  # not enrolled, or no confirmed factor
    USER_SUSPENDED = "user_suspended"
    USER_DEACTIVATED = "user_deactivated"
    NOT_A_TECHNICIAN = "not_a_technician"
    ORGANISATION_SUSPENDED = "organisation_suspended"  # the vendor's or the customer's
    VENDOR_NOT_GIVING_HELP = "vendor_not_giving_help"
    CUSTOMER_NOT_RECEIVING_HELP = "customer_not_receiving_help"
    ACCESS_DISABLED_BY_POLICY = "access_disabled_by_policy"
    TERMS_NOT_ACCEPTED_GIVING = "terms_not_accepted_giving"
    TERMS_NOT_ACCEPTED_RECEIVING = "terms_not_accepted_receiving"
    NO_GRANT = "no_grant"
    GRANT_REVOKED = "grant_revoked"
    GRANT_EXPIRED = "grant_expired"
    AGREEMENT_REVOKED = "agreement_revoked"
    AGREEMENT_EXPIRED = "agreement_expired"
    AGREEMENT_NOT_YET_VALID = "agreement_not_yet_valid"
    AGREEMENT_NOT_FOR_ACCESS = "agreement_not_for_access"  # it covers Support only
    AGREEMENT_NOT_FOR_SUPPORT = "agreement_not_for_support"  # it covers Access only
    NO_SUPPORT_AGREEMENT = "no_support_agreement"  # no live agreement covers Support
    TECHNICIAN_NOT_NAMED = "technician_not_named"
    STAFF_OUTSIDE_EEA = "staff_outside_eea"


@dataclass(frozen=True, slots=True)
class AccessAllowed:
    technician_id: uuid.UUID
    grant_id: uuid.UUID
    group_id: uuid.UUID
    agreement_id: uuid.UUID
    agreement_reference: str
    customer_org_id: uuid.UUID
    vendor_org_id: uuid.UUID
    permissions: frozenset[Permission]
    consent_required: bool  # always True for Support
    # The clause that allows pre-approved access, when consent is not required: the
    # audit trail of an unattended session names what made it lawful.
    preapproval_clause: str | None
    # The earliest of the grant's and the agreement's ends: no ticket may outlive it.
    valid_until: datetime | None
    support: bool
    allowed: Literal[True] = True

    def live_session(self) -> LiveSession:
        """What the tunnel keeps per running session to match revocation events."""
        return LiveSession(
            grant_id=self.grant_id,
            group_id=self.group_id,
            customer_org_id=self.customer_org_id,
            vendor_org_id=self.vendor_org_id,
            technician_id=self.technician_id,
            support=self.support,
        )


@dataclass(frozen=True, slots=True)
class AccessDenied:
    reason: DenyReason
    technician_id: uuid.UUID
    group_id: uuid.UUID
    # Set only once a grant ties the technician's organisation to the customer, so the
    # refusal (and its audit event, which the vendor's admins read) names no stranger.
    customer_org_id: uuid.UUID | None = None
    grant_id: uuid.UUID | None = None
    support: bool = False
    allowed: Literal[False] = False


AccessDecision = AccessAllowed | AccessDenied


def account_refusal(technician: User) -> DenyReason | None:
    if technician.status == UserStatus.SUSPENDED:
        return DenyReason.USER_SUSPENDED
    if technician.status == UserStatus.DISABLED:
        return DenyReason.USER_DEACTIVATED
    if technician.status != UserStatus.ACTIVE or not technician.confirmed_factors:
        return DenyReason.NO_SECOND_FACTOR
    if not technician.is_technician:
        return DenyReason.NOT_A_TECHNICIAN
    return None


def vendor_refusal(db: Session, vendor: Organisation) -> DenyReason | None:
    if not vendor.is_active:
        return DenyReason.ORGANISATION_SUSPENDED
    if not vendor.gives_help:
        return DenyReason.VENDOR_NOT_GIVING_HELP
    if not terms.accepted_current(db, vendor.id, Audience.GIVING):
        return DenyReason.TERMS_NOT_ACCEPTED_GIVING
    return None


def customer_refusal(db: Session, customer: Organisation, support: bool) -> DenyReason | None:
    if not customer.is_active:
        return DenyReason.ORGANISATION_SUSPENDED
    if not customer.receives_help:
        return DenyReason.CUSTOMER_NOT_RECEIVING_HELP
    if not support and not customer.access_enabled:
        return DenyReason.ACCESS_DISABLED_BY_POLICY
    if not terms.accepted_current(db, customer.id, Audience.RECEIVING):
        return DenyReason.TERMS_NOT_ACCEPTED_RECEIVING
    return None


def _grant_refusal(
    grant: Grant, technician: User, now: datetime, support: bool = False
) -> DenyReason | None:
    # The agreement before the grant's own expiry: a grant usually ends with its
    # agreement, and then the agreement is the cause worth telling.
    if grant.status == GrantStatus.REVOKED:
        return DenyReason.GRANT_REVOKED
    agreement = grant.agreement
    if agreement.status == AgreementStatus.REVOKED:
        return DenyReason.AGREEMENT_REVOKED
    if agreement.status == AgreementStatus.EXPIRED or (
        agreement.valid_until is not None and now >= agreement.valid_until
    ):
        return DenyReason.AGREEMENT_EXPIRED
    if now < agreement.valid_from:
        # Grants are made only under an agreement already in force, so this needs a
        # changed record or clock; checked anyway, failing closed.
        return DenyReason.AGREEMENT_NOT_YET_VALID
    if support and not agreement.coverage.support:
        return DenyReason.AGREEMENT_NOT_FOR_SUPPORT
    if not support and not agreement.coverage.access:
        return DenyReason.AGREEMENT_NOT_FOR_ACCESS
    if grant.is_expired_at(now):
        return DenyReason.GRANT_EXPIRED
    if grant.technicians and all(t.id != technician.id for t in grant.technicians):
        return DenyReason.TECHNICIAN_NOT_NAMED
    if technician.outside_eea and not agreement.non_eea_staff_allowed:
        return DenyReason.STAFF_OUTSIDE_EEA
    return None


def _usable(permissions: frozenset[Permission]) -> frozenset[Permission]:
    """The grant's permissions as a ticket may carry them. The clipboard needs control
    (grants.py refuses it alone); a row that says otherwise, written before that rule or
    by hand, gets no clipboard rather than a view-only session that reads it."""
    if Permission.CONTROL not in permissions:
        return permissions - {Permission.CLIPBOARD}
    return permissions


def _earliest(*moments: datetime | None) -> datetime | None:
    known = [m for m in moments if m is not None]
    return min(known) if known else None


def effective_permissions(granted: frozenset[Permission]) -> frozenset[Permission]:
    """What a grant's permissions allow: a shell as administrator is a shell, so
    ``terminal_admin`` brings ``terminal`` with it (an admin who ticks only the stronger
    box means both; the ticket then says both, and the agent needs both)."""
    if Permission.TERMINAL_ADMIN in granted:
        return granted | {Permission.TERMINAL}
    return granted


def decide(
    db: Session,
    technician: User,
    customer_group_id: uuid.UUID,
    now: datetime,
    support: bool = False,
) -> AccessDecision:
    """Allowed (with the grant, its permissions and whether consent is needed), or
    denied with the first reason that applies. ``support`` asks for a one-time Support
    session: the Access policy does not apply to it and consent is always asked, but it
    needs a grant and an agreement like any other access."""

    def deny(reason: DenyReason, grant: Grant | None = None) -> AccessDenied:
        return AccessDenied(
            reason=reason,
            technician_id=technician.id,
            group_id=customer_group_id,
            customer_org_id=grant.customer_org_id if grant else None,
            grant_id=grant.id if grant else None,
            support=support,
        )

    refusal = account_refusal(technician) or vendor_refusal(db, technician.organisation)
    if refusal:
        return deny(refusal)

    candidates = list(
        db.execute(
            select(Grant)
            .where(
                Grant.group_id == customer_group_id,
                Grant.vendor_org_id == technician.organisation_id,
            )
            .order_by(Grant.created_at.desc())
        )
        .unique()
        .scalars()
    )
    if not candidates:
        return deny(DenyReason.NO_GRANT)

    on_customer = customer_refusal(db, candidates[0].customer, support)
    if on_customer:
        return deny(on_customer, candidates[0])

    # Several grants can exist for one group and vendor (ended ones stay as history;
    # at most one is live). Take a grant that passes; otherwise explain the newest.
    first_refusal: tuple[DenyReason, Grant] | None = None
    for grant in candidates:
        reason = _grant_refusal(grant, technician, now, support)
        if reason is None:
            return AccessAllowed(
                technician_id=technician.id,
                grant_id=grant.id,
                group_id=grant.group_id,
                agreement_id=grant.agreement_id,
                agreement_reference=grant.agreement.reference,
                customer_org_id=grant.customer_org_id,
                vendor_org_id=grant.vendor_org_id,
                permissions=_usable(effective_permissions(grant.permissions)),
                consent_required=support or grant.consent_required,
                preapproval_clause=None
                if support or grant.consent_required
                else grant.agreement.preapproved_clause,
                valid_until=_earliest(grant.expires_at, grant.agreement.valid_until),
                support=support,
            )
        if first_refusal is None:
            first_refusal = (reason, grant)
    assert first_refusal is not None
    return deny(*first_refusal)


def audit_decision(
    db: Session,
    decision: AccessDecision,
    technician: User,
    *,
    source_address: str | None = None,
    machine_id: str | None = None,
    factor: str | None = None,
) -> AuditEvent:
    """Record a decision as ``access.requested`` (allowed: success; refused: denied)."""
    details: dict[str, object] = {"group": str(decision.group_id), "support": decision.support}
    if isinstance(decision, AccessAllowed):
        details |= {
            "grant": str(decision.grant_id),
            "agreement": str(decision.agreement_id),
            "agreement_reference": decision.agreement_reference,
            "permissions": sorted(p.value for p in decision.permissions),
            "consent_required": decision.consent_required,
            "preapproval_clause": decision.preapproval_clause,
        }
        return record(
            db,
            "access.requested",
            Outcome.SUCCESS,
            actor=Actor.of(technician),
            customer_org_id=decision.customer_org_id,
            machine_id=machine_id,
            source_address=source_address,
            factor=factor,
            details=details,
        )
    if decision.grant_id:
        details["grant"] = str(decision.grant_id)
    return record(
        db,
        "access.requested",
        Outcome.DENIED,
        actor=Actor.of(technician),
        reason=decision.reason.value,
        customer_org_id=decision.customer_org_id,
        machine_id=machine_id,
        source_address=source_address,
        factor=factor,
        details=details,
    )
