"""Organisations: the operator registers, appoints first admins, sets policy, suspends."""

from __future__ import annotations

import uuid

from fastapi import APIRouter

from fjernhjelp.portal import members, organisations, policy
from fjernhjelp.server.api.refusals import REFUSALS
from fjernhjelp.server.api.schemas import (
    AccountOut,
    AdminIn,
    InvitationOut,
    OrganisationIn,
    OrganisationOut,
    PolicyIn,
)
from fjernhjelp.server.deps import DB, State
from fjernhjelp.server.portal_caller import ApiCaller, link_lifetime

router = APIRouter(prefix="/organisations", tags=["organisations"], responses=REFUSALS)


@router.get("", response_model=list[OrganisationOut])
def list_organisations(db: DB, caller: ApiCaller) -> list[OrganisationOut]:
    """Every organisation for the operator; your own for an admin."""
    caller.require_admin()
    orgs = organisations.list_all(db, caller) if caller.user.is_operator else [caller.org]
    return [OrganisationOut.of(o) for o in orgs]


@router.post("", response_model=OrganisationOut, status_code=201)
def register(body: OrganisationIn, db: DB, caller: ApiCaller) -> OrganisationOut:
    org = organisations.register(
        db,
        caller,
        orgnr=body.orgnr,
        name=body.name,
        kind=body.kind,
        receives_help=body.receives_help,
        gives_help=body.gives_help,
    )
    db.commit()
    return OrganisationOut.of(org)


@router.get("/{org_id}", response_model=OrganisationOut)
def get_organisation(org_id: uuid.UUID, db: DB, caller: ApiCaller) -> OrganisationOut:
    return OrganisationOut.of(organisations.get(db, caller, org_id))


@router.get("/{org_id}/accounts", response_model=list[AccountOut])
def organisation_accounts(org_id: uuid.UUID, db: DB, caller: ApiCaller) -> list[AccountOut]:
    return [AccountOut.of(u) for u in members.list_members(db, caller, org_id)]


@router.put("/{org_id}/policy", response_model=OrganisationOut)
def set_policy(org_id: uuid.UUID, body: PolicyIn, db: DB, caller: ApiCaller) -> OrganisationOut:
    org = policy.set_policy(
        db,
        caller,
        org_id,
        policy.Policy(body.access_enabled, body.receives_help, body.gives_help),
    )
    db.commit()
    return OrganisationOut.of(org)


@router.post("/{org_id}/suspend", response_model=OrganisationOut)
def suspend(org_id: uuid.UUID, db: DB, caller: ApiCaller) -> OrganisationOut:
    org = organisations.suspend(db, caller, org_id)
    db.commit()
    return OrganisationOut.of(org)


@router.post("/{org_id}/resume", response_model=OrganisationOut)
def resume(org_id: uuid.UUID, db: DB, caller: ApiCaller) -> OrganisationOut:
    org = organisations.resume(db, caller, org_id)
    db.commit()
    return OrganisationOut.of(org)


@router.post("/{org_id}/admins", response_model=InvitationOut, status_code=201)
def appoint_admin(
    org_id: uuid.UUID, body: AdminIn, state: State, db: DB, caller: ApiCaller
) -> InvitationOut:
    """The organisation's first admin: a pending account and its one-time link."""
    lifetime = link_lifetime(state)
    invitation = organisations.appoint_admin(
        db,
        caller,
        org_id,
        username=body.username,
        email=body.email,
        display_name=body.display_name,
        link_lifetime=lifetime,
    )
    db.commit()
    return InvitationOut.of(invitation, state.settings.effective_public_url, caller.now + lifetime)
