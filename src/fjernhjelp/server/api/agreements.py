"""Agreements with vendors, and the vendors and technicians to choose from."""

from __future__ import annotations

import uuid

from fastapi import APIRouter

from fjernhjelp.portal import agreements, grants
from fjernhjelp.portal.agreements import AgreementSpec
from fjernhjelp.server.api.refusals import REFUSALS
from fjernhjelp.server.api.schemas import (
    AgreementIn,
    AgreementOut,
    OrganisationRef,
    TechnicianRef,
)
from fjernhjelp.server.deps import DB
from fjernhjelp.server.portal_caller import ApiCaller

router = APIRouter(tags=["agreements"], responses=REFUSALS)


@router.get("/vendors", response_model=list[OrganisationRef])
def vendors(db: DB, caller: ApiCaller) -> list[OrganisationRef]:
    """Organisations you can record an agreement with."""
    return [OrganisationRef.of(o) for o in agreements.vendors(db, caller)]


@router.get("/vendors/{vendor_id}/technicians", response_model=list[TechnicianRef])
def vendor_technicians(vendor_id: uuid.UUID, db: DB, caller: ApiCaller) -> list[TechnicianRef]:
    """A vendor's technicians, to name in a grant: only of a vendor you have an
    agreement with."""
    return [TechnicianRef.of(u) for u in grants.eligible_technicians(db, caller, vendor_id)]


@router.get("/agreements", response_model=list[AgreementOut])
def list_agreements(db: DB, caller: ApiCaller) -> list[AgreementOut]:
    """Agreements your organisation recorded with its vendors."""
    return [AgreementOut.of(a, caller.now) for a in agreements.list_as_customer(db, caller)]


@router.get("/agreements/received", response_model=list[AgreementOut])
def received_agreements(db: DB, caller: ApiCaller) -> list[AgreementOut]:
    """Agreements customers recorded with your organisation as the vendor."""
    return [AgreementOut.of(a, caller.now) for a in agreements.list_as_vendor(db, caller)]


@router.post("/agreements", response_model=AgreementOut, status_code=201)
def record_agreement(body: AgreementIn, db: DB, caller: ApiCaller) -> AgreementOut:
    agreement = agreements.record(db, caller, AgreementSpec(**body.model_dump()))
    db.commit()
    return AgreementOut.of(agreement, caller.now)


@router.get("/agreements/{agreement_id}", response_model=AgreementOut)
def get_agreement(agreement_id: uuid.UUID, db: DB, caller: ApiCaller) -> AgreementOut:
    return AgreementOut.of(agreements.get_visible(db, caller, agreement_id), caller.now)


@router.post("/agreements/{agreement_id}/revoke", response_model=AgreementOut)
def revoke_agreement(agreement_id: uuid.UUID, db: DB, caller: ApiCaller) -> AgreementOut:
    """Ends the agreement now; every grant resting on it stops, running sessions too."""
    agreement = agreements.revoke(db, caller, agreement_id)
    db.commit()
    return AgreementOut.of(agreement, caller.now)
