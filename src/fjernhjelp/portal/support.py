"""Who may offer a one-time Support session to whom.

Support reaches a person, not a machine group: the technician chooses a customer
organisation, and whoever joins with the code decides, every time, whether to let them
in (no pre-approval in Support). What makes it lawful is the agreement the customer
recorded with the vendor: it must be in force and cover Support. Both organisations must
be active and have accepted the terms, and the technician must hold a usable account with
a second factor, exactly as for Access. A municipality's Access policy does not apply to
Support: Support is what municipalities may use until the operator turns Access on.

Like ``portal.access.decide`` this reads and never writes; the caller audits the
decision. A customer the vendor has no Support agreement with answers the same
``no_support_agreement`` as an id that does not exist, so a refusal names no stranger.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from fjernhjelp.auth.models import User
from fjernhjelp.portal.access import (
    DenyReason,
    account_refusal,
    customer_refusal,
    vendor_refusal,
)
from fjernhjelp.portal.models import (
    Agreement,
    AgreementCovers,
    AgreementKind,
    AgreementStatus,
    Organisation,
)

_COVERING_SUPPORT = (AgreementCovers.SUPPORT.value, AgreementCovers.BOTH.value)


@dataclass(frozen=True, slots=True)
class SupportAllowed:
    technician_id: uuid.UUID
    customer_org_id: uuid.UUID
    vendor_org_id: uuid.UUID
    agreement_id: uuid.UUID
    agreement_reference: str
    # No code, ticket or session may outlive the agreement.
    valid_until: datetime | None
    allowed: Literal[True] = True


@dataclass(frozen=True, slots=True)
class SupportDenied:
    reason: DenyReason
    technician_id: uuid.UUID
    # Set only once an agreement ties the two organisations, as for Access.
    customer_org_id: uuid.UUID | None = None
    allowed: Literal[False] = False


SupportDecision = SupportAllowed | SupportDenied


def _live_support_agreements(
    db: Session, vendor_org_id: uuid.UUID, now: datetime, customer_org_id: uuid.UUID | None
) -> list[Agreement]:
    query = select(Agreement).where(
        Agreement.vendor_org_id == vendor_org_id,
        Agreement.kind == AgreementKind.REMOTE_SUPPORT.value,
        Agreement.covers.in_(_COVERING_SUPPORT),
        Agreement.status == AgreementStatus.ACTIVE.value,
    )
    if customer_org_id is not None:
        query = query.where(Agreement.customer_org_id == customer_org_id)
    rows = db.execute(query.order_by(Agreement.created_at.desc())).unique().scalars()
    # Times checked here too: between an agreement's end and the next sweep its status
    # still says active.
    return [a for a in rows if a.is_valid_at(now)]


def decide_support(
    db: Session, technician: User, customer_org_id: uuid.UUID, now: datetime
) -> SupportDecision:
    """May ``technician`` start a Support session for ``customer_org_id`` now?"""
    refusal = account_refusal(technician) or vendor_refusal(db, technician.organisation)
    if refusal:
        return SupportDenied(refusal, technician.id)
    agreements = _live_support_agreements(
        db, technician.organisation_id, now, customer_org_id=customer_org_id
    )
    if not agreements:
        return SupportDenied(DenyReason.NO_SUPPORT_AGREEMENT, technician.id)
    customer = agreements[0].customer
    on_customer = customer_refusal(db, customer, support=True)
    if on_customer:
        return SupportDenied(on_customer, technician.id, customer.id)
    usable = [a for a in agreements if a.non_eea_staff_allowed or not technician.outside_eea]
    if not usable:
        return SupportDenied(DenyReason.STAFF_OUTSIDE_EEA, technician.id, customer.id)
    agreement = usable[0]
    return SupportAllowed(
        technician_id=technician.id,
        customer_org_id=customer.id,
        vendor_org_id=agreement.vendor_org_id,
        agreement_id=agreement.id,
        agreement_reference=agreement.reference,
        valid_until=agreement.valid_until,
    )


def support_customers(db: Session, technician: User, now: datetime) -> list[Organisation]:
    """The customers ``technician`` may start a Support session for now, by name: what
    the console offers under "New Support session"."""
    seen: dict[uuid.UUID, Organisation] = {}
    for agreement in _live_support_agreements(db, technician.organisation_id, now, None):
        seen.setdefault(agreement.customer_org_id, agreement.customer)
    return sorted(
        (
            org
            for org in seen.values()
            if isinstance(decide_support(db, technician, org.id, now), SupportAllowed)
        ),
        key=lambda org: org.name.casefold(),
    )
