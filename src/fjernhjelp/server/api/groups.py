"""Machine groups of your organisation."""

from __future__ import annotations

import uuid

from fastapi import APIRouter

from fjernhjelp.portal import groups
from fjernhjelp.server.api.refusals import REFUSALS
from fjernhjelp.server.api.schemas import GroupIn, GroupOut
from fjernhjelp.server.deps import DB
from fjernhjelp.server.portal_caller import ApiCaller

router = APIRouter(prefix="/groups", tags=["groups"], responses=REFUSALS)


@router.get("", response_model=list[GroupOut])
def list_groups(db: DB, caller: ApiCaller) -> list[GroupOut]:
    return [GroupOut.of(g) for g in groups.list_own(db, caller)]


@router.post("", response_model=GroupOut, status_code=201)
def create_group(body: GroupIn, db: DB, caller: ApiCaller) -> GroupOut:
    group = groups.create(db, caller, body.name)
    db.commit()
    return GroupOut.of(group)


@router.get("/{group_id}", response_model=GroupOut)
def get_group(group_id: uuid.UUID, db: DB, caller: ApiCaller) -> GroupOut:
    return GroupOut.of(groups.get_own(db, caller, group_id))


@router.patch("/{group_id}", response_model=GroupOut)
def rename_group(group_id: uuid.UUID, body: GroupIn, db: DB, caller: ApiCaller) -> GroupOut:
    group = groups.rename(db, caller, group_id, body.name)
    db.commit()
    return GroupOut.of(group)


@router.delete("/{group_id}", status_code=204)
def delete_group(group_id: uuid.UUID, db: DB, caller: ApiCaller) -> None:
    groups.delete(db, caller, group_id)
    db.commit()
