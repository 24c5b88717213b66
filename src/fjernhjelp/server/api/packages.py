"""Installer packages for a machine group: make one (the file is returned once), list, revoke.

A refusal the service audited comes marked recorded: server/deps.get_db keeps its event
and server/problems.py answers it."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from fastapi import APIRouter
from pydantic import BaseModel, Field

from fjernhjelp.control.package import fingerprint
from fjernhjelp.machines import packages
from fjernhjelp.machines.models import InstallerPackage
from fjernhjelp.server.deps import DB, State
from fjernhjelp.server.portal_caller import ApiCaller

router = APIRouter(prefix="/packages", tags=["access"])


class PackageRequest(BaseModel):
    group_id: uuid.UUID
    label: str = Field(default="", max_length=100)
    lifetime_hours: int = Field(default=72, ge=1, le=24 * 90)
    max_uses: int = Field(default=1, ge=1, le=packages.MAX_USES)


class PackageOut(BaseModel):
    id: uuid.UUID
    label: str
    group: str
    created_by: str
    created_at: datetime
    expires_at: datetime
    max_uses: int
    uses: int
    revoked: bool
    state: str = Field(description="active, revoked, expired, used_up or not_allowed")
    grant_id: uuid.UUID | None = Field(
        description="the grant a vendor's technician made it under; null: the customer's own"
    )


class MadePackageOut(PackageOut):
    file: str = Field(description="the package file; shown once, keep it")
    server_key_fingerprint: str


def _out(db: DB, p: InstallerPackage, now: datetime) -> PackageOut:
    return PackageOut(
        id=p.id,
        label=p.label,
        group=p.group.name,
        created_by=p.created_by.username,
        created_at=p.created_at,
        expires_at=p.expires_at,
        max_uses=p.max_uses,
        uses=p.uses,
        revoked=p.revoked_at is not None,
        state=packages.state_of(db, p, now),
        grant_id=p.grant_id,
    )


@router.post("", status_code=201, response_model=MadePackageOut)
def create_package(body: PackageRequest, state: State, db: DB, caller: ApiCaller) -> MadePackageOut:
    made = packages.create(
        db,
        caller,
        group_id=body.group_id,
        label=body.label,
        lifetime=timedelta(hours=body.lifetime_hours),
        max_uses=body.max_uses,
        server_url=state.settings.effective_public_url,
        signing_key=state.keys.signing,
    )
    db.commit()
    return MadePackageOut(
        **_out(db, made.package, caller.now).model_dump(),
        file=made.file_bytes.decode(),
        server_key_fingerprint=fingerprint(state.keys.signing.public_key()),
    )


@router.get("", response_model=list[PackageOut])
def list_packages(db: DB, caller: ApiCaller) -> list[PackageOut]:
    return [_out(db, p, caller.now) for p in packages.visible(db, caller)]


@router.post("/{package_id}/revoke", response_model=PackageOut)
def revoke_package(package_id: uuid.UUID, db: DB, caller: ApiCaller) -> PackageOut:
    package = packages.revoke(db, caller, package_id)
    db.commit()
    return _out(db, package, caller.now)
