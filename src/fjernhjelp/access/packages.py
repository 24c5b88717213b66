"""Installer packages: generated for one machine group, listed, revoked.

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
from sqlalchemy.orm import InstrumentedAttribute, Session

from fjernhjelp.access.errors import NotFound, PackageRefused
from fjernhjelp.access.models import InstallerPackage
from fjernhjelp.audit.log import Actor, Outcome, record
from fjernhjelp.auth.models import User
from fjernhjelp.auth.tokens import new_token, token_hash
from fjernhjelp.control.package import build_package
from fjernhjelp.portal import access
from fjernhjelp.portal.models.grant import Grant
from fjernhjelp.portal.models.group import MachineGroup

MAX_LIFETIME = timedelta(days=90)
MAX_USES = 10_000


@dataclass(frozen=True)
class MadePackage:
    package: InstallerPackage
    file_bytes: bytes


def may_manage(db: Session, user: User, group: MachineGroup, now: datetime) -> bool:
    """The group's own admins, or a technician whose organisation is granted the group."""
    if user.is_admin and user.organisation_id == group.organisation_id:
        return True
    if user.is_technician:
        return isinstance(access.decide(db, user, group.id, now), access.AccessAllowed)
    return False


def _candidates(
    user: User,
    organisation: InstrumentedAttribute[uuid.UUID],
    group: InstrumentedAttribute[uuid.UUID],
) -> list[ColumnElement[bool]]:
    """A coarse SQL filter for rows ``may_manage`` could allow (own organisation for admins,
    granted groups for technicians); the caller still asks ``may_manage`` row by row, since
    grant terms and policy are not expressible here."""
    conditions: list[ColumnElement[bool]] = []
    if user.is_admin:
        conditions.append(organisation == user.organisation_id)
    if user.is_technician:
        granted = select(Grant.group_id).where(Grant.vendor_org_id == user.organisation_id)
        conditions.append(group.in_(granted))
    return conditions


def _group_for(db: Session, user: User, group_id: uuid.UUID, now: datetime) -> MachineGroup:
    group = db.get(MachineGroup, group_id)
    if group is None or not may_manage(db, user, group, now):
        raise NotFound("no_such_group")
    return group


def create(
    db: Session,
    *,
    user: User,
    group_id: uuid.UUID,
    label: str,
    lifetime: timedelta,
    max_uses: int,
    now: datetime,
    server_url: str,
    signing_key: Ed25519PrivateKey,
    source_address: str | None = None,
) -> MadePackage:
    group = _group_for(db, user, group_id, now)
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
        actor=Actor.of(user),
        customer_org_id=group.organisation_id,
        source_address=source_address,
        details={
            "package": str(package.id),
            "group": str(group.id),
            "label": package.label,
            "expires_at": package.expires_at.isoformat(),
            "max_uses": max_uses,
        },
    )
    return MadePackage(package, file_bytes)


def visible(db: Session, user: User, now: datetime) -> list[InstallerPackage]:
    """Packages of the user's own organisation's groups (admins), or of groups their
    organisation is granted (technicians)."""
    conditions = _candidates(user, InstallerPackage.organisation_id, InstallerPackage.group_id)
    if not conditions:
        return []
    rows = db.execute(
        select(InstallerPackage)
        .where(or_(*conditions))
        .order_by(InstallerPackage.created_at.desc())
    ).scalars()
    return [p for p in rows if may_manage(db, user, p.group, now)]


def revoke(
    db: Session,
    *,
    user: User,
    package_id: uuid.UUID,
    now: datetime,
    source_address: str | None = None,
) -> InstallerPackage:
    package = db.get(InstallerPackage, package_id)
    if package is None or not may_manage(db, user, package.group, now):
        raise NotFound("no_such_package")
    if package.revoked_at is None:
        package.revoked_at = now
        record(
            db,
            "package.revoked",
            Outcome.SUCCESS,
            actor=Actor.of(user),
            customer_org_id=package.organisation_id,
            source_address=source_address,
            details={
                "package": str(package.id),
                "before": {"revoked": False},
                "after": {"revoked": True},
            },
        )
    return package


def state_of(package: InstallerPackage, now: datetime) -> str:
    """One word for the list: active, revoked, expired or used_up."""
    return {
        None: "active",
        "package_revoked": "revoked",
        "package_expired": "expired",
        "package_used_up": "used_up",
    }[package.usable_at(now)]


def manageable_groups(db: Session, user: User, now: datetime) -> list[MachineGroup]:
    """Groups the user may make a package for (what a form offers; ``create`` still
    decides on its own)."""
    conditions = _candidates(user, MachineGroup.organisation_id, MachineGroup.id)
    if not conditions:
        return []
    rows = db.execute(
        select(MachineGroup).where(or_(*conditions)).order_by(MachineGroup.name)
    ).scalars()
    return [g for g in rows if may_manage(db, user, g, now)]
