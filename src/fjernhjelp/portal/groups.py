"""Machine groups of a receiving organisation: the default one, and any more it makes."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from fjernhjelp.audit.log import Actor, Outcome, record
from fjernhjelp.caller import Caller
from fjernhjelp.portal.errors import Conflict, NotFound, PortalError
from fjernhjelp.portal.models import Grant, MachineGroup, Organisation
from fjernhjelp.portal.trail import audits_refusals, changed

DEFAULT_NAME = "Standard"
MAX_NAME = 100


def describe(group: MachineGroup) -> dict[str, Any]:
    return {
        "id": str(group.id),
        "organisation": str(group.organisation_id),
        "name": group.name,
        "is_default": group.is_default,
    }


def default_group(db: Session, org_id: uuid.UUID) -> MachineGroup | None:
    return db.execute(
        select(MachineGroup).where(
            MachineGroup.organisation_id == org_id, MachineGroup.is_default.is_(True)
        )
    ).scalar_one_or_none()


def ensure_default(db: Session, org: Organisation, actor: Actor) -> MachineGroup:
    """The organisation's default group, made if it has none (when it starts receiving)."""
    existing = default_group(db, org.id)
    if existing is not None:
        return existing
    name = DEFAULT_NAME
    if _name_taken(db, org.id, name):
        name = f"{DEFAULT_NAME} ({org.orgnr})"
    group = MachineGroup(organisation_id=org.id, name=name, is_default=True)
    db.add(group)
    db.flush()
    record(
        db,
        "group.created",
        Outcome.SUCCESS,
        actor=actor,
        customer_org_id=org.id,
        details={"before": None, "after": describe(group)},
    )
    return group


def _name_taken(
    db: Session, org_id: uuid.UUID, name: str, except_id: uuid.UUID | None = None
) -> bool:
    stmt = select(MachineGroup.id).where(
        MachineGroup.organisation_id == org_id,
        func.lower(MachineGroup.name) == name.lower(),
    )
    if except_id is not None:
        stmt = stmt.where(MachineGroup.id != except_id)
    return db.execute(stmt).first() is not None


def _clean_name(name: str) -> str:
    name = " ".join(name.split())
    if not name or len(name) > MAX_NAME:
        raise PortalError("group.bad_name")
    return name


def list_own(db: Session, caller: Caller) -> list[MachineGroup]:
    caller.require_receiving_admin()
    return list(
        db.execute(
            select(MachineGroup)
            .where(MachineGroup.organisation_id == caller.user.organisation_id)
            .order_by(MachineGroup.is_default.desc(), MachineGroup.name)
        ).scalars()
    )


def get_own(
    db: Session, caller: Caller, group_id: uuid.UUID, *, lock: bool = False
) -> MachineGroup:
    caller.require_receiving_admin()
    stmt = select(MachineGroup).where(MachineGroup.id == group_id)
    if lock:
        stmt = stmt.with_for_update(of=MachineGroup)  # not the joined organisation
    group = db.execute(stmt).unique().scalar_one_or_none()
    if group is None or group.organisation_id != caller.user.organisation_id:
        raise NotFound("group", group_id)
    return group


@audits_refusals("group.created")
def create(db: Session, caller: Caller, name: str) -> MachineGroup:
    caller.require_receiving_admin()
    name = _clean_name(name)
    org_id = caller.user.organisation_id
    if _name_taken(db, org_id, name):
        raise Conflict("group.name_taken")
    group = MachineGroup(organisation_id=org_id, name=name, is_default=False)
    db.add(group)
    db.flush()
    changed(db, caller, "group.created", org_id=org_id, before=None, after=describe(group))
    return group


@audits_refusals("group.renamed")
def rename(db: Session, caller: Caller, group_id: uuid.UUID, name: str) -> MachineGroup:
    group = get_own(db, caller, group_id)
    name = _clean_name(name)
    if _name_taken(db, group.organisation_id, name, except_id=group.id):
        raise Conflict("group.name_taken")
    before = describe(group)
    group.name = name
    db.flush()
    changed(
        db,
        caller,
        "group.renamed",
        org_id=group.organisation_id,
        before=before,
        after=describe(group),
    )
    return group


@audits_refusals("group.deleted")
def delete(db: Session, caller: Caller, group_id: uuid.UUID) -> None:
    group = get_own(db, caller, group_id)
    if group.is_default:
        raise Conflict("group.default_cannot_go")
    # Grants, even ended ones, are the record of who could reach the group: a group
    # with any grant in its history stays.
    used = db.execute(
        select(func.count()).select_from(Grant).where(Grant.group_id == group.id)
    ).scalar_one()
    if used:
        raise Conflict("group.has_grants")
    before, org_id = describe(group), group.organisation_id
    db.delete(group)
    db.flush()
    changed(db, caller, "group.deleted", org_id=org_id, before=before, after=None)
