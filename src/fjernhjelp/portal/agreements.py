"""Agreements a receiving organisation records with a vendor; every grant rests on one."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from fjernhjelp.caller import Caller
from fjernhjelp.portal import notifications, terms
from fjernhjelp.portal.errors import NotFound, PortalError
from fjernhjelp.portal.models import (
    Agreement,
    AgreementCovers,
    AgreementKind,
    AgreementStatus,
    Audience,
    Grant,
    GrantStatus,
    Organisation,
    OrgStatus,
)
from fjernhjelp.portal.revocations import Revocation, RevocationKind, announce
from fjernhjelp.portal.trail import audits_refusals, changed

MAX_REFERENCE = 100
MAX_CLAUSE = 4000


@dataclass(frozen=True, slots=True)
class AgreementSpec:
    vendor_org_id: uuid.UUID
    kind: str
    reference: str
    valid_from: datetime
    valid_until: datetime | None
    allows_preapproved: bool = False
    preapproved_clause: str | None = None
    non_eea_staff_allowed: bool = False
    # Support, Access or both (AgreementCovers); Access is what agreements covered before
    # Support existed, so callers that do not say keep meaning that.
    covers: str = "access"


def describe(agreement: Agreement) -> dict[str, Any]:
    return {
        "id": str(agreement.id),
        "customer": str(agreement.customer_org_id),
        "vendor": str(agreement.vendor_org_id),
        "kind": agreement.kind,
        "covers": agreement.covers,
        "reference": agreement.reference,
        "valid_from": agreement.valid_from.isoformat(),
        "valid_until": agreement.valid_until.isoformat() if agreement.valid_until else None,
        "allows_preapproved": agreement.allows_preapproved,
        "preapproved_clause": agreement.preapproved_clause,
        "non_eea_staff_allowed": agreement.non_eea_staff_allowed,
        "status": agreement.status,
    }


def effective_status(agreement: Agreement, now: datetime) -> str:
    """What a reader needs: ``active``, ``not_yet_valid``, ``expired`` or ``revoked``."""
    if agreement.status == AgreementStatus.REVOKED:
        return "revoked"
    if agreement.status == AgreementStatus.EXPIRED or (
        agreement.valid_until is not None and now >= agreement.valid_until
    ):
        return "expired"
    if now < agreement.valid_from:
        return "not_yet_valid"
    return "active"


def vendors(db: Session, caller: Caller) -> list[Organisation]:
    """Organisations a customer can record an agreement with: active, giving help."""
    caller.require_receiving_admin()
    return list(
        db.execute(
            select(Organisation)
            .where(
                Organisation.gives_help.is_(True),
                Organisation.status == OrgStatus.ACTIVE,
                Organisation.id != caller.user.organisation_id,
            )
            .order_by(Organisation.name)
        ).scalars()
    )


def list_as_customer(db: Session, caller: Caller) -> list[Agreement]:
    caller.require_receiving_admin()
    return list(
        db.execute(
            select(Agreement)
            .where(Agreement.customer_org_id == caller.user.organisation_id)
            .order_by(Agreement.created_at.desc())
        )
        .unique()
        .scalars()
    )


def list_as_vendor(db: Session, caller: Caller) -> list[Agreement]:
    caller.require_giving_admin()
    return list(
        db.execute(
            select(Agreement)
            .where(Agreement.vendor_org_id == caller.user.organisation_id)
            .order_by(Agreement.created_at.desc())
        )
        .unique()
        .scalars()
    )


def get_visible(db: Session, caller: Caller, agreement_id: uuid.UUID) -> Agreement:
    """Readable by the admins of both parties; by no one else."""
    caller.require_admin()
    agreement = db.get(Agreement, agreement_id)
    org_id = caller.user.organisation_id
    if agreement is None or org_id not in (agreement.customer_org_id, agreement.vendor_org_id):
        raise NotFound("agreement", agreement_id)
    return agreement


def get_own(db: Session, caller: Caller, agreement_id: uuid.UUID) -> Agreement:
    """Changeable by the customer's admins only."""
    caller.require_receiving_admin()
    agreement = db.get(Agreement, agreement_id)
    if agreement is None or agreement.customer_org_id != caller.user.organisation_id:
        raise NotFound("agreement", agreement_id)
    return agreement


def _vendor(db: Session, caller: Caller, vendor_org_id: uuid.UUID) -> Organisation:
    vendor = db.get(Organisation, vendor_org_id)
    if (
        vendor is None
        or not vendor.gives_help
        or not vendor.is_active
        or vendor.id == caller.user.organisation_id
    ):
        raise PortalError("agreement.unknown_vendor")
    return vendor


@audits_refusals("agreement.recorded")
def record(db: Session, caller: Caller, spec: AgreementSpec) -> Agreement:
    caller.require_receiving_admin()
    terms.require_accepted(db, caller.org, Audience.RECEIVING)
    vendor = _vendor(db, caller, spec.vendor_org_id)
    try:
        kind = AgreementKind(spec.kind)
    except ValueError:
        raise PortalError("agreement.bad_kind") from None
    try:
        covers = AgreementCovers(spec.covers)
    except ValueError:
        raise PortalError("agreement.bad_covers") from None
    reference = " ".join(spec.reference.split())
    if not reference or len(reference) > MAX_REFERENCE:
        raise PortalError("agreement.bad_reference")
    if spec.valid_until is not None:
        if spec.valid_until <= spec.valid_from:
            raise PortalError("agreement.ends_before_start")
        if spec.valid_until <= caller.now:
            raise PortalError("agreement.already_ended")
    clause = (spec.preapproved_clause or "").strip()
    if spec.allows_preapproved and not clause:
        raise PortalError("agreement.clause_required")
    if len(clause) > MAX_CLAUSE:
        raise PortalError("agreement.clause_too_long")
    agreement = Agreement(
        customer_org_id=caller.user.organisation_id,
        vendor_org_id=vendor.id,
        kind=kind,
        covers=covers,
        reference=reference,
        valid_from=spec.valid_from,
        valid_until=spec.valid_until,
        allows_preapproved=spec.allows_preapproved,
        # A clause is kept only where it allows something; otherwise it could
        # mislead a later reader into thinking pre-approval was agreed.
        preapproved_clause=clause if spec.allows_preapproved else None,
        non_eea_staff_allowed=spec.non_eea_staff_allowed,
        status=AgreementStatus.ACTIVE,
        created_at=caller.now,
        created_by_id=caller.user.id,
    )
    db.add(agreement)
    db.flush()
    changed(
        db,
        caller,
        "agreement.recorded",
        org_id=agreement.customer_org_id,
        before=None,
        after=describe(agreement),
    )
    return agreement


def grants_resting_on(db: Session, agreement_id: uuid.UUID) -> list[Grant]:
    return list(
        db.execute(
            select(Grant).where(
                Grant.agreement_id == agreement_id,
                or_(Grant.status == GrantStatus.ACTIVE, Grant.status == GrantStatus.EXPIRED),
            )
        )
        .unique()
        .scalars()
    )


def ending_event(
    db: Session, agreement: Agreement, kind: RevocationKind, now: datetime
) -> Revocation:
    grants = grants_resting_on(db, agreement.id)
    return Revocation(
        kind=kind,
        occurred_at=now,
        grant_ids=frozenset(g.id for g in grants),
        group_ids=frozenset(g.group_id for g in grants),
        customer_org_id=agreement.customer_org_id,
        vendor_org_id=agreement.vendor_org_id,
        agreement_ids=frozenset({agreement.id}),
    )


@audits_refusals("agreement.revoked")
def revoke(db: Session, caller: Caller, agreement_id: uuid.UUID) -> Agreement:
    agreement = get_own(db, caller, agreement_id)
    if agreement.status != AgreementStatus.ACTIVE:
        raise PortalError("agreement.already_ended")
    before = describe(agreement)
    agreement.status = AgreementStatus.REVOKED
    agreement.ended_at = caller.now
    db.flush()
    changed(
        db,
        caller,
        "agreement.revoked",
        org_id=agreement.customer_org_id,
        before=before,
        after=describe(agreement),
    )
    announce(db, ending_event(db, agreement, RevocationKind.AGREEMENT_REVOKED, caller.now))
    notifications.notify(
        db,
        agreement.vendor_org_id,
        "agreement_revoked",
        customer=agreement.customer.name,
        reference=agreement.reference,
    )
    return agreement
