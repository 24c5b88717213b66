"""People in your organisation: invite, delegate admin, deactivate; the operator suspends."""

from __future__ import annotations

import uuid

from fastapi import APIRouter

from fjernhjelp.portal import members
from fjernhjelp.server.api.refusals import REFUSALS
from fjernhjelp.server.api.schemas import AccountOut, Flag, InvitationOut, InviteIn
from fjernhjelp.server.deps import DB, State
from fjernhjelp.server.portal_caller import ApiCaller, link_lifetime

router = APIRouter(prefix="/accounts", tags=["accounts"], responses=REFUSALS)


@router.get("", response_model=list[AccountOut])
def list_accounts(db: DB, caller: ApiCaller) -> list[AccountOut]:
    return [AccountOut.of(u) for u in members.list_members(db, caller)]


@router.post("", response_model=InvitationOut, status_code=201)
def invite(body: InviteIn, state: State, db: DB, caller: ApiCaller) -> InvitationOut:
    """A pending account and its one-time enrolment link: the person sets a password and
    a second factor there before the account can do anything."""
    lifetime = link_lifetime(state)
    invitation = members.invite(
        db,
        caller,
        username=body.username,
        email=body.email,
        display_name=body.display_name,
        admin=body.admin,
        technician=body.technician,
        outside_eea=body.outside_eea,
        link_lifetime=lifetime,
    )
    db.commit()
    return InvitationOut.of(invitation, state.settings.effective_public_url, caller.now + lifetime)


@router.get("/{user_id}", response_model=AccountOut)
def get_account(user_id: uuid.UUID, db: DB, caller: ApiCaller) -> AccountOut:
    return AccountOut.of(members.get_member(db, caller, user_id))


@router.post("/{user_id}/enrolment-link", response_model=InvitationOut, status_code=201)
def new_link(user_id: uuid.UUID, state: State, db: DB, caller: ApiCaller) -> InvitationOut:
    lifetime = link_lifetime(state)
    invitation = members.new_link(db, caller, user_id, link_lifetime=lifetime)
    db.commit()
    return InvitationOut.of(invitation, state.settings.effective_public_url, caller.now + lifetime)


@router.put("/{user_id}/admin", response_model=AccountOut)
def set_admin(user_id: uuid.UUID, body: Flag, db: DB, caller: ApiCaller) -> AccountOut:
    user = members.set_admin(db, caller, user_id, body.value)
    db.commit()
    return AccountOut.of(user)


@router.put("/{user_id}/outside-eea", response_model=AccountOut)
def set_outside_eea(user_id: uuid.UUID, body: Flag, db: DB, caller: ApiCaller) -> AccountOut:
    user = members.set_outside_eea(db, caller, user_id, body.value)
    db.commit()
    return AccountOut.of(user)


@router.post("/{user_id}/deactivate", response_model=AccountOut)
def deactivate(user_id: uuid.UUID, db: DB, caller: ApiCaller) -> AccountOut:
    user = members.deactivate(db, caller, user_id)
    db.commit()
    return AccountOut.of(user)


@router.post("/{user_id}/reactivate", response_model=AccountOut)
def reactivate(user_id: uuid.UUID, db: DB, caller: ApiCaller) -> AccountOut:
    user = members.reactivate(db, caller, user_id)
    db.commit()
    return AccountOut.of(user)


@router.post("/{user_id}/suspend", response_model=AccountOut)
def suspend(user_id: uuid.UUID, db: DB, caller: ApiCaller) -> AccountOut:
    """Operator only: stops the account at once and ends its sessions."""
    user = members.suspend(db, caller, user_id)
    db.commit()
    return AccountOut.of(user)


@router.post("/{user_id}/unsuspend", response_model=AccountOut)
def unsuspend(user_id: uuid.UUID, db: DB, caller: ApiCaller) -> AccountOut:
    user = members.unsuspend(db, caller, user_id)
    db.commit()
    return AccountOut.of(user)
