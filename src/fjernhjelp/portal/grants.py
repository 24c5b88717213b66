"""Grants: a customer lets a vendor reach one of its groups, under a valid agreement.

The rules: the agreement is the customer's own, covers Access and is valid now; at least
one permission, control only with view, the clipboard only with control; pre-approved (no
consent asked) only if the agreement allows it; an expiry no later than the agreement's
end; named technicians must be the vendor's; at most one live grant per group and vendor.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from fjernhjelp.auth.models import User, UserStatus
from fjernhjelp.caller import Caller
from fjernhjelp.portal import agreements, groups, notifications, terms
from fjernhjelp.portal.errors import Conflict, NotAllowed, NotFound, PortalError
from fjernhjelp.portal.models import (
    Agreement,
    Audience,
    Grant,
    GrantStatus,
    MachineGroup,
    Organisation,
    Permission,
)
from fjernhjelp.portal.revocations import Revocation, RevocationKind, announce
from fjernhjelp.portal.trail import audits_refusals, changed


@dataclass(frozen=True, slots=True)
class GrantTerms:
    """What a grant allows; the part an admin can change after creating it."""

    permissions: frozenset[Permission]
    consent_required: bool = True
    expires_at: datetime | None = None  # None: the agreement's end, if it has one
    technician_ids: frozenset[uuid.UUID] = frozenset()  # empty: every technician
    # Not a session permission (it never goes into a ticket): whether the vendor's
    # technicians may make installer packages, i.e. put new machines into the group.
    may_make_packages: bool = False


def parse_permissions(values: list[str]) -> frozenset[Permission]:
    try:
        return frozenset(Permission(v) for v in values)
    except ValueError:
        raise PortalError("grant.bad_permission") from None


def describe(grant: Grant) -> dict[str, Any]:
    return {
        "id": str(grant.id),
        "customer": str(grant.customer_org_id),
        "vendor": str(grant.vendor_org_id),
        "group": str(grant.group_id),
        "agreement": str(grant.agreement_id),
        "permissions": sorted(p.value for p in grant.permissions),
        "consent_required": grant.consent_required,
        "expires_at": grant.expires_at.isoformat() if grant.expires_at else None,
        "technicians": [t.username for t in grant.technicians],
        "may_make_packages": grant.may_make_packages,
        "status": grant.status,
    }


def effective_status(grant: Grant, now: datetime) -> str:
    """``active``, ``revoked``, ``expired`` or ``agreement_ended``."""
    if grant.status == GrantStatus.REVOKED:
        return "revoked"
    if grant.is_expired_at(now):
        return "expired"
    if not grant.agreement.is_valid_at(now):
        return "agreement_ended"
    return "active"


# -- reading -------------------------------------------------------------------


def list_as_customer(db: Session, caller: Caller) -> list[Grant]:
    caller.require_receiving_admin()
    return list(
        db.execute(
            select(Grant)
            .where(Grant.customer_org_id == caller.user.organisation_id)
            .order_by(Grant.created_at.desc())
        )
        .unique()
        .scalars()
    )


def received(db: Session, caller: Caller) -> list[Grant]:
    """Grants to the caller's organisation as a vendor. Admins see them all; a
    technician sees the live ones it may use. Never another vendor's."""
    user = caller.user
    if not (user.is_admin or user.is_operator or user.is_technician):
        raise NotAllowed("vendor_member")
    if not caller.org.gives_help:
        raise NotAllowed("giving_organisation")
    rows = list(
        db.execute(
            select(Grant)
            .where(Grant.vendor_org_id == user.organisation_id)
            .order_by(Grant.created_at.desc())
        )
        .unique()
        .scalars()
    )
    if user.is_admin or user.is_operator:
        return rows
    return [
        g
        for g in rows
        if effective_status(g, caller.now) == "active" and names_technician(g, user.id)
    ]


def names_technician(grant: Grant, user_id: uuid.UUID) -> bool:
    return not grant.technicians or any(t.id == user_id for t in grant.technicians)


def get_visible(db: Session, caller: Caller, grant_id: uuid.UUID) -> Grant:
    """The customer's admins and the vendor's admins may read a grant; no one else."""
    caller.require_admin()
    grant = db.get(Grant, grant_id)
    org_id = caller.user.organisation_id
    if grant is None or org_id not in (grant.customer_org_id, grant.vendor_org_id):
        raise NotFound("grant", grant_id)
    return grant


def get_own(db: Session, caller: Caller, grant_id: uuid.UUID) -> Grant:
    caller.require_receiving_admin()
    grant = db.get(Grant, grant_id)
    if grant is None or grant.customer_org_id != caller.user.organisation_id:
        raise NotFound("grant", grant_id)
    return grant


def gives_access(agreement: Agreement, now: datetime) -> bool:
    """Whether a grant can be made under the agreement now: in force and covering Access.
    Forms offer only these (creating refuses the rest anyway)."""
    return agreement.coverage.access and agreement.is_valid_at(now)


def eligible_technicians(db: Session, caller: Caller, vendor_org_id: uuid.UUID) -> list[User]:
    """The vendor's technicians a customer may name: only for a vendor it has an
    agreement with, so no customer can list any vendor's staff."""
    caller.require_receiving_admin()
    party = db.execute(
        select(Agreement.id).where(
            Agreement.customer_org_id == caller.user.organisation_id,
            Agreement.vendor_org_id == vendor_org_id,
        )
    ).first()
    if party is None:
        raise NotFound("vendor", vendor_org_id)
    return list(
        db.execute(
            select(User)
            .where(
                User.organisation_id == vendor_org_id,
                User.is_technician.is_(True),
                User.status.in_([UserStatus.ACTIVE, UserStatus.PENDING]),
            )
            .order_by(User.display_name)
        )
        .unique()
        .scalars()
    )


# -- rules ---------------------------------------------------------------------


def _checked_terms(
    db: Session, caller: Caller, agreement: Agreement, wanted: GrantTerms
) -> tuple[datetime | None, list[User]]:
    """Apply every rule; return the expiry to store and the named technicians."""
    now = caller.now
    # A grant gives Access (installed agents on a group); under an agreement the customer
    # recorded for Support only it would give what the customer never agreed to.
    if not agreement.coverage.access:
        raise PortalError("grant.agreement_support_only")
    if not agreement.is_valid_at(now):
        raise PortalError("grant.agreement_not_valid")
    vendor: Organisation = agreement.vendor
    if not vendor.is_active or not vendor.gives_help:
        raise PortalError("grant.vendor_unavailable")
    if not wanted.permissions:
        raise PortalError("grant.no_permissions")
    if Permission.CONTROL in wanted.permissions and Permission.VIEW not in wanted.permissions:
        raise PortalError("grant.control_needs_view")
    if Permission.CLIPBOARD in wanted.permissions and Permission.CONTROL not in wanted.permissions:
        raise PortalError("grant.clipboard_needs_control")
    if not wanted.consent_required and not agreement.allows_preapproved:
        raise PortalError("grant.preapproval_not_allowed")
    expires_at = wanted.expires_at or agreement.valid_until
    if expires_at is not None and expires_at <= now:
        raise PortalError("grant.expiry_in_past")
    if (
        agreement.valid_until is not None
        and expires_at is not None
        and expires_at > agreement.valid_until
    ):
        raise PortalError("grant.expiry_after_agreement")
    technicians: list[User] = []
    if wanted.technician_ids:
        technicians = list(
            db.execute(select(User).where(User.id.in_(wanted.technician_ids))).unique().scalars()
        )
        usable = [
            t
            for t in technicians
            if t.organisation_id == vendor.id
            and t.is_technician
            and t.status in (UserStatus.ACTIVE, UserStatus.PENDING)
        ]
        if len(usable) != len(wanted.technician_ids):
            raise PortalError("grant.unknown_technician")
    return expires_at, technicians


def _live_duplicate(
    db: Session,
    group_id: uuid.UUID,
    vendor_org_id: uuid.UUID,
    now: datetime,
    except_id: uuid.UUID | None = None,
) -> bool:
    stmt = select(Grant).where(
        Grant.group_id == group_id,
        Grant.vendor_org_id == vendor_org_id,
        Grant.status == GrantStatus.ACTIVE,
        or_(Grant.expires_at.is_(None), Grant.expires_at > now),
    )
    if except_id is not None:
        stmt = stmt.where(Grant.id != except_id)
    return any(g.agreement.is_valid_at(now) for g in db.execute(stmt).unique().scalars())


# -- changing ------------------------------------------------------------------


@audits_refusals("grant.created")
def create(
    db: Session,
    caller: Caller,
    *,
    group_id: uuid.UUID,
    agreement_id: uuid.UUID,
    wanted: GrantTerms,
) -> Grant:
    caller.require_receiving_admin()
    terms.require_accepted(db, caller.org, Audience.RECEIVING)
    # Locking the group serialises two admins granting the same vendor at once.
    group: MachineGroup = groups.get_own(db, caller, group_id, lock=True)
    agreement = agreements.get_own(db, caller, agreement_id)
    expires_at, technicians = _checked_terms(db, caller, agreement, wanted)
    if _live_duplicate(db, group.id, agreement.vendor_org_id, caller.now):
        raise Conflict("grant.duplicate")
    grant = Grant(
        customer_org_id=group.organisation_id,
        vendor_org_id=agreement.vendor_org_id,
        group=group,
        agreement=agreement,
        consent_required=wanted.consent_required,
        expires_at=expires_at,
        status=GrantStatus.ACTIVE,
        created_at=caller.now,
        created_by_id=caller.user.id,
        technicians=technicians,
        may_make_packages=wanted.may_make_packages,
    )
    grant.set_permissions(wanted.permissions)
    db.add(grant)
    db.flush()
    changed(
        db,
        caller,
        "grant.created",
        org_id=grant.customer_org_id,
        before=None,
        after=describe(grant),
    )
    notifications.notify(
        db, grant.vendor_org_id, "grant_created", customer=grant.customer.name, group=group.name
    )
    return grant


def _narrows(before: Grant, after: GrantTerms, after_expiry: datetime | None) -> bool:
    """Whether anything allowed before is no longer allowed (running sessions must go)."""
    if before.permissions - after.permissions:
        return True
    if before.preapproved and after.consent_required:
        return True
    old_names = {t.id for t in before.technicians}
    if after.technician_ids and (not old_names or old_names - after.technician_ids):
        return True
    return after_expiry is not None and (
        before.expires_at is None or after_expiry < before.expires_at
    )


@audits_refusals("grant.changed")
def update(db: Session, caller: Caller, grant_id: uuid.UUID, wanted: GrantTerms) -> Grant:
    grant = get_own(db, caller, grant_id)
    if effective_status(grant, caller.now) != "active":
        raise PortalError("grant.not_active")
    expires_at, technicians = _checked_terms(db, caller, grant.agreement, wanted)
    before = describe(grant)
    narrowed = _narrows(grant, wanted, expires_at)
    grant.set_permissions(wanted.permissions)
    grant.consent_required = wanted.consent_required
    grant.expires_at = expires_at
    grant.technicians = technicians
    # Turning this off needs no event: enrolment asks the grant each time, so packages
    # made under it stop at once (access/enrolment.py).
    grant.may_make_packages = wanted.may_make_packages
    db.flush()
    after = describe(grant)
    if after == before:
        return grant
    changed(db, caller, "grant.changed", org_id=grant.customer_org_id, before=before, after=after)
    if narrowed:
        announce(db, _event(grant, RevocationKind.GRANT_NARROWED, caller.now))
    return grant


def _event(grant: Grant, kind: RevocationKind, now: datetime) -> Revocation:
    return Revocation(
        kind=kind,
        occurred_at=now,
        grant_ids=frozenset({grant.id}),
        group_ids=frozenset({grant.group_id}),
        customer_org_id=grant.customer_org_id,
        vendor_org_id=grant.vendor_org_id,
    )


def expiry_event(grant: Grant, now: datetime) -> Revocation:
    return _event(grant, RevocationKind.GRANT_EXPIRED, now)


@audits_refusals("grant.revoked")
def revoke(db: Session, caller: Caller, grant_id: uuid.UUID) -> Grant:
    grant = get_own(db, caller, grant_id)
    if grant.status == GrantStatus.REVOKED:
        raise PortalError("grant.already_revoked")
    before = describe(grant)
    grant.status = GrantStatus.REVOKED
    grant.ended_at = caller.now
    db.flush()
    changed(
        db,
        caller,
        "grant.revoked",
        org_id=grant.customer_org_id,
        before=before,
        after=describe(grant),
    )
    announce(db, _event(grant, RevocationKind.GRANT_REVOKED, caller.now))
    notifications.notify(
        db,
        grant.vendor_org_id,
        "grant_revoked",
        customer=grant.customer.name,
        group=grant.group.name,
    )
    return grant
