"""Installer packages: generated for one machine group, listed, revoked.

A package puts machines into a customer's group, where every vendor granted the group
can reach them; so making one is the customer's decision (its admins, or a vendor under
a grant with ``may_make_packages``), and a vendor's package stops with that grant.

A package carries the server URL, the server's signing public key (which the agent pins)
and an enrolment token with an expiry and a maximum number of uses. Only the token's hash
is stored; the package file is shown once, when it is made.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.orm import Session

from fjernhjelp.audit.log import Outcome, record
from fjernhjelp.auth.models import User
from fjernhjelp.auth.tokens import new_token, token_hash
from fjernhjelp.caller import Caller
from fjernhjelp.control.package import build_package
from fjernhjelp.machines.models import InstallerPackage
from fjernhjelp.portal import access
from fjernhjelp.portal.grants import effective_status
from fjernhjelp.portal.models.grant import Grant
from fjernhjelp.portal.models.group import MachineGroup
from fjernhjelp.refusals import NotFound, PackageRefused

MAX_LIFETIME = timedelta(days=90)
MAX_USES = 10_000


@dataclass(frozen=True)
class MadePackage:
    package: InstallerPackage
    file_bytes: bytes


@dataclass(frozen=True)
class MakeRight:
    """Why the caller may make a package for a group: as the customer's own admin
    (``grant_id`` None) or under a grant that lets the vendor make packages."""

    grant_id: uuid.UUID | None


def right_to_make(
    db: Session, caller: Caller, group: MachineGroup
) -> MakeRight | PackageRefused | NotFound:
    """The customer decides who may put machines into its groups: its admins always, a
    vendor's technician only under a live grant that names them and has
    ``may_make_packages``. A group the caller has no grant on answers as one that does
    not exist; a granted group without the right answers why."""
    user = caller.user
    if user.is_admin and user.organisation_id == group.organisation_id:
        return MakeRight(None)
    if user.is_technician:
        decision = access.decide(db, user, group.id, caller.now)
        if isinstance(decision, access.AccessAllowed):
            grant = db.get(Grant, decision.grant_id)
            if grant is not None and grant.may_make_packages:
                return MakeRight(grant.id)
            return PackageRefused("packages_not_granted")
    return NotFound("group")


def may_revoke(caller: Caller, package: InstallerPackage) -> bool:
    """The customer's admins revoke any of its packages; a technician only those it made
    itself (to stop one it lost quickly), never the customer's or a colleague's."""
    user = caller.user
    if user.is_admin and user.organisation_id == package.organisation_id:
        return True
    return user.is_technician and package.created_by_id == user.id


def _ties(db: Session, user: User, organisation_id: uuid.UUID) -> bool:
    """Whether a grant links the user's organisation to the customer: only then may a
    refusal's audit event name the customer (its admins read it there)."""
    if user.organisation_id == organisation_id:
        return True
    return (
        db.execute(
            select(Grant.id).where(
                Grant.vendor_org_id == user.organisation_id,
                Grant.customer_org_id == organisation_id,
            )
        ).first()
        is not None
    )


def maker_refusal(db: Session, package: InstallerPackage, now: datetime) -> str | None:
    """None while the right the package was made with still holds, else why not.

    A vendor's package lives with its grant: revoked, expired, its agreement ended, the
    right to make packages turned off, or its maker no longer allowed (suspended, no
    longer named) all stop it. A package with no grant recorded must come from the
    customer's own organisation (packages made before grants were recorded on them
    included)."""
    if package.grant_id is None:
        if package.created_by.organisation_id != package.organisation_id:
            return "package_maker_not_customer"
        return None
    grant = db.get(Grant, package.grant_id)
    if grant is None or effective_status(grant, now) != "active":
        return "package_grant_ended"
    if not grant.may_make_packages:
        return "package_grant_withdrawn"
    decision = access.decide(db, package.created_by, package.group_id, now)
    if not isinstance(decision, access.AccessAllowed) or decision.grant_id != grant.id:
        return "package_maker_refused"
    return None


def _refuse_creation(
    db: Session,
    caller: Caller,
    group_id: uuid.UUID,
    refusal: PackageRefused | NotFound,
    customer_org_id: uuid.UUID | None,
) -> PackageRefused | NotFound:
    """Audit a refused creation; nothing was changed before it, so the event is all the
    request keeps (``recorded``)."""
    record(
        db,
        "package.created",
        Outcome.DENIED,
        actor=caller.actor,
        reason=refusal.reason,
        customer_org_id=customer_org_id,
        source_address=caller.source_address,
        details={"group": str(group_id)},
    )
    refusal.recorded = True
    return refusal


def create(
    db: Session,
    caller: Caller,
    *,
    group_id: uuid.UUID,
    label: str,
    lifetime: timedelta,
    max_uses: int,
    server_url: str,
    signing_key: Ed25519PrivateKey,
) -> MadePackage:
    """A package, or a refusal: NotFound and "packages_not_granted" are audited (and
    marked recorded, so the request keeps the event); out-of-range values are a form
    error, not audited."""
    user, now = caller.user, caller.now
    group = db.get(MachineGroup, group_id)
    right = right_to_make(db, caller, group) if group is not None else NotFound("group")
    if not isinstance(right, MakeRight):
        # The customer reads a refusal on its group only where a grant ties the caller
        # to it; an unknown or ungranted group names no one.
        tied = group is not None and isinstance(right, PackageRefused)
        raise _refuse_creation(
            db, caller, group_id, right, group.organisation_id if tied and group else None
        )
    assert group is not None
    if not timedelta(minutes=5) <= lifetime <= MAX_LIFETIME:
        raise PackageRefused("lifetime_out_of_range")
    if not 1 <= max_uses <= MAX_USES:
        raise PackageRefused("max_uses_out_of_range")
    token = new_token()
    package = InstallerPackage(
        group=group,
        organisation_id=group.organisation_id,
        label=(label.strip() or group.name)[:100],
        token_hash=token_hash(token),
        created_by=user,
        grant_id=right.grant_id,
        created_at=now,
        expires_at=now + lifetime,
        max_uses=max_uses,
    )
    db.add(package)
    db.flush()
    file_bytes = build_package(
        signing_key,
        server_url=server_url,
        enrolment_token=token,
        group=group.name,
        organisation=group.organisation.name,
        expires_at=package.expires_at,
        package_id=str(package.id),
    )
    record(
        db,
        "package.created",
        Outcome.SUCCESS,
        actor=caller.actor,
        customer_org_id=group.organisation_id,
        source_address=caller.source_address,
        details={
            "package": str(package.id),
            "group": str(group.id),
            "grant": str(right.grant_id) if right.grant_id else None,
            "label": package.label,
            "expires_at": package.expires_at.isoformat(),
            "max_uses": max_uses,
        },
    )
    return MadePackage(package, file_bytes)


def visible(db: Session, caller: Caller) -> list[InstallerPackage]:
    """The packages the caller may revoke: all of its organisation's (admins), the ones
    it made itself (technicians)."""
    user = caller.user
    conditions: list[ColumnElement[bool]] = []
    if user.is_admin:
        conditions.append(InstallerPackage.organisation_id == user.organisation_id)
    if user.is_technician:
        conditions.append(InstallerPackage.created_by_id == user.id)
    if not conditions:
        return []
    return list(
        db.execute(
            select(InstallerPackage)
            .where(or_(*conditions))
            .order_by(InstallerPackage.created_at.desc())
        ).scalars()
    )


def get_revocable(db: Session, caller: Caller, package_id: uuid.UUID) -> InstallerPackage:
    """The package, if the caller may revoke it; NotFound otherwise, as for a missing id."""
    package = db.get(InstallerPackage, package_id)
    if package is None or not may_revoke(caller, package):
        raise NotFound("package")
    return package


def revoke(db: Session, caller: Caller, package_id: uuid.UUID) -> InstallerPackage:
    """Revoke a package the caller may revoke; any other attempt is audited (marked
    recorded: nothing else was changed) and answered as if the package did not exist."""
    try:
        package = get_revocable(db, caller, package_id)
    except NotFound as exc:
        found = db.get(InstallerPackage, package_id)
        record(
            db,
            "package.revoked",
            Outcome.DENIED,
            actor=caller.actor,
            reason="no_such_package",
            customer_org_id=found.organisation_id
            if found and _ties(db, caller.user, found.organisation_id)
            else None,
            source_address=caller.source_address,
            details={"package": str(package_id)},
        )
        exc.recorded = True
        raise
    if package.revoked_at is None:
        package.revoked_at = caller.now
        record(
            db,
            "package.revoked",
            Outcome.SUCCESS,
            actor=caller.actor,
            customer_org_id=package.organisation_id,
            source_address=caller.source_address,
            details={
                "package": str(package.id),
                "before": {"revoked": False},
                "after": {"revoked": True},
            },
        )
    return package


def state_of(db: Session, package: InstallerPackage, now: datetime) -> str:
    """One word for the list: active, revoked, expired, used_up, or not_allowed (the
    grant it was made under ended or no longer allows packages)."""
    unusable = package.usable_at(now)
    if unusable is None and maker_refusal(db, package, now) is not None:
        return "not_allowed"
    return {
        None: "active",
        "package_revoked": "revoked",
        "package_expired": "expired",
        "package_used_up": "used_up",
    }[unusable]


def manageable_groups(db: Session, caller: Caller) -> list[MachineGroup]:
    """Groups the caller may make a package for (what a form offers; ``create`` still
    decides on its own)."""
    user = caller.user
    conditions: list[ColumnElement[bool]] = []
    if user.is_admin:
        conditions.append(MachineGroup.organisation_id == user.organisation_id)
    if user.is_technician:
        granted = select(Grant.group_id).where(
            Grant.vendor_org_id == user.organisation_id, Grant.may_make_packages.is_(True)
        )
        conditions.append(MachineGroup.id.in_(granted))
    if not conditions:
        return []
    rows = db.execute(
        select(MachineGroup).where(or_(*conditions)).order_by(MachineGroup.name)
    ).scalars()
    return [g for g in rows if isinstance(right_to_make(db, caller, g), MakeRight)]
