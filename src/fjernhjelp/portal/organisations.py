"""Organisations as the operator sees them: registering, appointing the first admin,
suspending and resuming."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from fjernhjelp.auth import enrolment
from fjernhjelp.auth.accounts import AccountError, create_user
from fjernhjelp.auth.models import LoginSession, User
from fjernhjelp.caller import Caller, CallerKind
from fjernhjelp.portal import groups, members
from fjernhjelp.portal.errors import Conflict, NotAllowed, NotFound, PortalError
from fjernhjelp.portal.members import Invitation
from fjernhjelp.portal.models import Organisation, OrgKind, OrgStatus, default_access_enabled
from fjernhjelp.portal.orgnr import InvalidOrgnr, normalise_orgnr
from fjernhjelp.portal.revocations import Revocation, RevocationKind, announce
from fjernhjelp.portal.trail import audits_refusals, changed

MAX_NAME = 200


def describe(org: Organisation) -> dict[str, Any]:
    return {
        "id": str(org.id),
        "orgnr": org.orgnr,
        "name": org.name,
        "kind": org.kind,
        "receives_help": org.receives_help,
        "gives_help": org.gives_help,
        "access_enabled": org.access_enabled,
        "status": org.status,
    }


def list_all(db: Session, caller: Caller) -> list[Organisation]:
    caller.require_operator()
    return list(db.execute(select(Organisation).order_by(Organisation.name)).scalars())


def get(db: Session, caller: Caller, org_id: uuid.UUID) -> Organisation:
    """The operator reads any organisation; an admin only its own."""
    caller.require_admin()
    org = db.get(Organisation, org_id)
    if org is None or (not caller.is_operator and org.id != caller.user.organisation_id):
        raise NotFound("organisation", org_id)
    return org


def by_orgnr(db: Session, orgnr: str) -> Organisation | None:
    """The organisation registered under ``orgnr`` (as written or normalised), if any."""
    try:
        number = normalise_orgnr(orgnr)
    except InvalidOrgnr:
        return None
    return db.execute(select(Organisation).where(Organisation.orgnr == number)).scalar_one_or_none()


@audits_refusals("organisation.created")
def register(
    db: Session,
    caller: Caller,
    *,
    orgnr: str,
    name: str,
    kind: str,
    receives_help: bool,
    gives_help: bool,
) -> Organisation:
    """Register an organisation: the one way to make one, for the operator in the portal
    and its API, the command line (the operator's own organisation) and the demo."""
    caller.require_operator()
    try:
        number = normalise_orgnr(orgnr)
    except InvalidOrgnr:
        raise PortalError("organisation.bad_orgnr") from None
    name = " ".join(name.split())
    if not name or len(name) > MAX_NAME:
        raise PortalError("organisation.bad_name")
    try:
        org_kind = OrgKind(kind)
    except ValueError:
        raise PortalError("organisation.bad_kind") from None
    # Only the operator's own organisation neither gives nor receives help, and only the
    # host's command line (create-operator) or the system (the demo) makes that one.
    if not (receives_help or gives_help or caller.is_host_operator):
        raise PortalError("organisation.no_role")
    if db.execute(select(Organisation.id).where(Organisation.orgnr == number)).first():
        raise Conflict("organisation.orgnr_taken")
    org = Organisation(
        orgnr=number,
        name=name,
        kind=org_kind,
        receives_help=receives_help,
        gives_help=gives_help,
        access_enabled=default_access_enabled(org_kind),
        status=OrgStatus.ACTIVE,
        created_at=caller.now,
    )
    db.add(org)
    db.flush()
    changed(db, caller, "organisation.created", org_id=org.id, before=None, after=describe(org))
    if receives_help:
        groups.ensure_default(db, org, caller.actor)
    return org


@audits_refusals("account.created")
def create_operator(
    db: Session,
    caller: Caller,
    *,
    orgnr: str,
    org_name: str,
    username: str,
    email: str,
    display_name: str,
    link_lifetime: timedelta,
) -> Invitation:
    """An operator account, pending until its one-time enrolment link is used, in the
    operator's organisation (registered first if it is not yet). Only from the host's
    command line: no web request can make an operator (the lesson of CVE-2024-1709).
    Any refusal, the registration's too, is audited as the account it was for."""
    if caller.kind is not CallerKind.COMMAND_LINE:
        raise NotAllowed("command_line")
    org = by_orgnr(db, orgnr) or register(
        db,
        caller,
        orgnr=orgnr,
        name=org_name,
        kind=OrgKind.OTHER,
        receives_help=False,
        gives_help=False,
    )
    try:
        user = create_user(
            db,
            organisation=org,
            username=username,
            email=email,
            display_name=display_name,
            is_operator=True,
            is_admin=True,
            actor=caller.actor,
        )
    except AccountError as exc:
        raise PortalError(exc.reason) from None
    token = enrolment.issue_link(
        db, user, actor=caller.actor, now=caller.now, lifetime=link_lifetime
    )
    return Invitation(user, token)


@audits_refusals("account.created")
def appoint_admin(
    db: Session,
    caller: Caller,
    org_id: uuid.UUID,
    *,
    username: str,
    email: str,
    display_name: str,
    link_lifetime: timedelta,
) -> Invitation:
    """The first admin (the daily manager or administrative contact): a pending
    account and a one-time enrolment link the operator hands over."""
    caller.require_operator()
    org = get(db, caller, org_id)
    return members.invite_into(
        db,
        caller,
        org,
        username=username,
        email=email,
        display_name=display_name,
        admin=True,
        technician=False,
        outside_eea=False,
        link_lifetime=link_lifetime,
    )


def suspension_event(org: Organisation, kind: RevocationKind, caller: Caller) -> Revocation:
    return Revocation(
        kind=kind,
        occurred_at=caller.now,
        customer_org_id=org.id if org.receives_help else None,
        vendor_org_id=org.id if org.gives_help else None,
    )


@audits_refusals("organisation.suspended")
def suspend(db: Session, caller: Caller, org_id: uuid.UUID) -> Organisation:
    caller.require_operator()
    org = get(db, caller, org_id)
    if org.id == caller.user.organisation_id:
        raise PortalError("organisation.not_your_own")
    if org.status == OrgStatus.SUSPENDED:
        return org
    before = describe(org)
    org.status = OrgStatus.SUSPENDED
    db.execute(
        delete(LoginSession)
        .where(LoginSession.user_id.in_(select(User.id).where(User.organisation_id == org.id)))
        .execution_options(synchronize_session=False)
    )
    db.flush()
    changed(db, caller, "organisation.suspended", org_id=org.id, before=before, after=describe(org))
    announce(db, suspension_event(org, RevocationKind.ORGANISATION_SUSPENDED, caller))
    return org


@audits_refusals("organisation.resumed")
def resume(db: Session, caller: Caller, org_id: uuid.UUID) -> Organisation:
    caller.require_operator()
    org = get(db, caller, org_id)
    if org.status != OrgStatus.SUSPENDED:
        raise PortalError("organisation.not_suspended")
    before = describe(org)
    org.status = OrgStatus.ACTIVE
    db.flush()
    changed(db, caller, "organisation.resumed", org_id=org.id, before=before, after=describe(org))
    return org
