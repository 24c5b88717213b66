"""Grants: which vendor may reach which of your groups, and how; what you received."""

from __future__ import annotations

import uuid

from fastapi import APIRouter

from fjernhjelp.portal import grants, overview
from fjernhjelp.server.api.refusals import REFUSALS
from fjernhjelp.server.api.schemas import (
    GrantIn,
    GrantOut,
    GrantTermsIn,
    GroupOut,
    OrganisationRef,
    OverviewRow,
    ReceivedFromCustomer,
)
from fjernhjelp.server.deps import DB
from fjernhjelp.server.portal_caller import ApiCaller

router = APIRouter(tags=["grants"], responses=REFUSALS)


@router.get("/grants", response_model=list[GrantOut])
def list_grants(db: DB, caller: ApiCaller) -> list[GrantOut]:
    return [GrantOut.of(g, caller.now) for g in grants.list_as_customer(db, caller)]


@router.get("/grants/received", response_model=list[ReceivedFromCustomer])
def received(db: DB, caller: ApiCaller) -> list[ReceivedFromCustomer]:
    """What customers granted your organisation, one block per customer. A technician
    sees only the live grants it may use."""
    return [
        ReceivedFromCustomer(
            customer=OrganisationRef.of(block.customer),
            grants=[GrantOut.of(g, caller.now) for g in block.grants],
        )
        for block in overview.received_by_customer(db, caller)
    ]


@router.get("/access-overview", response_model=list[OverviewRow])
def access_overview(db: DB, caller: ApiCaller) -> list[OverviewRow]:
    """Each of your groups with the vendors that can reach it now."""
    return [
        OverviewRow(
            group=GroupOut.of(row.group), grants=[GrantOut.of(g, caller.now) for g in row.grants]
        )
        for row in overview.who_has_access(db, caller)
    ]


@router.post("/grants", response_model=GrantOut, status_code=201)
def create_grant(body: GrantIn, db: DB, caller: ApiCaller) -> GrantOut:
    grant = grants.create(
        db, caller, group_id=body.group_id, agreement_id=body.agreement_id, wanted=body.terms()
    )
    db.commit()
    return GrantOut.of(grant, caller.now)


@router.get("/grants/{grant_id}", response_model=GrantOut)
def get_grant(grant_id: uuid.UUID, db: DB, caller: ApiCaller) -> GrantOut:
    return GrantOut.of(grants.get_visible(db, caller, grant_id), caller.now)


@router.put("/grants/{grant_id}", response_model=GrantOut)
def change_grant(grant_id: uuid.UUID, body: GrantTermsIn, db: DB, caller: ApiCaller) -> GrantOut:
    """Change permissions, consent, expiry or named technicians; narrowing cuts running
    sessions that the new terms no longer allow."""
    grant = grants.update(db, caller, grant_id, body.terms())
    db.commit()
    return GrantOut.of(grant, caller.now)


@router.post("/grants/{grant_id}/revoke", response_model=GrantOut)
def revoke_grant(grant_id: uuid.UUID, db: DB, caller: ApiCaller) -> GrantOut:
    grant = grants.revoke(db, caller, grant_id)
    db.commit()
    return GrantOut.of(grant, caller.now)
