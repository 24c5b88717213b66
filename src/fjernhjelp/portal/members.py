"""People in an organisation: invitations with one-time links, admin rights given and
withdrawn, deactivation by the organisation, suspension by the operator.

Only operators manage operator accounts: an admin of the operator's own organisation
sees its operators in its list and can change nothing about them (``_manageable``).
Every change to an account goes through this module, whether it comes from a page, the
API or the command line, so the rule holds on every path.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from fjernhjelp.auth import accounts, enrolment, logins
from fjernhjelp.auth.accounts import AccountError, create_user
from fjernhjelp.auth.models import User, UserStatus
from fjernhjelp.caller import Caller
from fjernhjelp.portal import reenrolment, terms
from fjernhjelp.portal.errors import Conflict, NotFound, OperatorOnly, PortalError
from fjernhjelp.portal.models import Audience, Organisation
from fjernhjelp.portal.revocations import Revocation, RevocationKind, announce
from fjernhjelp.portal.trail import audits_refusals, changed


@dataclass(frozen=True, slots=True)
class Invitation:
    user: User
    token: str  # shown once, to be handed over; only its hash is stored

    def link(self, public_url: str) -> str:
        return f"{public_url}/enroll/{self.token}"


def describe(user: User) -> dict[str, Any]:
    return {**accounts.describe(user), "outside_eea": user.outside_eea}


# -- reading -------------------------------------------------------------------


def list_members(db: Session, caller: Caller, org_id: uuid.UUID | None = None) -> list[User]:
    """An admin lists its own organisation; the operator any organisation."""
    caller.require_admin()
    target = org_id or caller.user.organisation_id
    foreign = target != caller.user.organisation_id
    if foreign and (not caller.user.is_operator or db.get(Organisation, target) is None):
        raise NotFound("organisation", target)
    return list(
        db.execute(select(User).where(User.organisation_id == target).order_by(User.display_name))
        .unique()
        .scalars()
    )


def get_member(db: Session, caller: Caller, user_id: uuid.UUID) -> User:
    """A user the caller may read: same organisation, or any for the operator."""
    caller.require_admin()
    user = db.get(User, user_id)
    if user is None or (
        not caller.is_operator and user.organisation_id != caller.user.organisation_id
    ):
        raise NotFound("user", user_id)
    return user


def _manageable(caller: Caller, user: User) -> User:
    """Only operators manage operator accounts. Otherwise an admin of the operator's
    own organisation could re-enrol an operator and log in as one."""
    if user.is_operator and not caller.is_operator:
        raise OperatorOnly("member.operator_only", account=user.username)
    return user


def _own_member(db: Session, caller: Caller, user_id: uuid.UUID) -> User:
    """A user the caller may change as an admin: same organisation only."""
    caller.require_admin()
    user = db.get(User, user_id)
    if user is None or user.organisation_id != caller.user.organisation_id:
        raise NotFound("user", user_id)
    return _manageable(caller, user)


def _not_yourself(caller: Caller, user: User) -> None:
    if user.id == caller.user.id:
        raise PortalError("member.not_yourself")


def _other_admins(db: Session, user: User) -> int:
    return db.execute(
        select(func.count())
        .select_from(User)
        .where(
            User.organisation_id == user.organisation_id,
            User.is_admin.is_(True),
            User.status.in_([UserStatus.ACTIVE, UserStatus.PENDING]),
            User.id != user.id,
        )
    ).scalar_one()


# -- invitations ---------------------------------------------------------------


def invite_into(
    db: Session,
    caller: Caller,
    org: Organisation,
    *,
    username: str,
    email: str,
    display_name: str,
    admin: bool,
    technician: bool,
    outside_eea: bool,
    link_lifetime: timedelta,
) -> Invitation:
    """Create a pending account in ``org`` and its one-time enrolment link. The account
    can do nothing until the link is used to set a password and a second factor."""
    if not (admin or technician):
        raise PortalError("member.no_role")
    if technician and not org.gives_help:
        raise PortalError("member.technician_needs_vendor")
    try:
        user = create_user(
            db,
            organisation=org,
            username=username,
            email=email,
            display_name=display_name,
            is_admin=admin,
            is_technician=technician,
            actor=caller.actor,
            source_address=caller.source_address,
        )
    except AccountError as exc:
        raise PortalError(exc.reason) from None
    user.created_at = caller.now
    if outside_eea:
        before = describe(user)
        user.outside_eea = True
        changed(db, caller, "account.changed", org_id=org.id, before=before, after=describe(user))
    token = enrolment.issue_link(
        db,
        user,
        actor=caller.actor,
        now=caller.now,
        lifetime=link_lifetime,
        source_address=caller.source_address,
    )
    return Invitation(user, token)


@audits_refusals("account.created")
def invite(
    db: Session,
    caller: Caller,
    *,
    username: str,
    email: str,
    display_name: str,
    admin: bool = False,
    technician: bool = False,
    outside_eea: bool = False,
    link_lifetime: timedelta,
) -> Invitation:
    caller.require_admin()
    if technician:
        terms.require_accepted(db, caller.org, Audience.GIVING)
    return invite_into(
        db,
        caller,
        caller.org,
        username=username,
        email=email,
        display_name=display_name,
        admin=admin,
        technician=technician,
        outside_eea=outside_eea,
        link_lifetime=link_lifetime,
    )


@audits_refusals("account.enrolment_link.issued")
def new_link(
    db: Session, caller: Caller, user_id: uuid.UUID, *, link_lifetime: timedelta
) -> Invitation:
    """A fresh one-time link (earlier ones stop working): for an invitation that ran
    out, or a colleague who lost their phone. The command line, which holds the
    server's keys, may ask it for any account, an operator's too.

    For an active account it is a re-enrolment: the customers relying on the person
    see the link handed out, and using it replaces the factors and ends the sessions."""
    user = _manageable(caller, get_member(db, caller, user_id))
    if user.status not in (UserStatus.PENDING, UserStatus.ACTIVE):
        raise PortalError("member.link_needs_active")
    actor, now, source_address = caller.actor, caller.now, caller.source_address
    token = enrolment.issue_link(
        db, user, actor=actor, now=now, lifetime=link_lifetime, source_address=source_address
    )
    if user.status == UserStatus.ACTIVE:
        reenrolment.link_issued(
            db, user, actor=actor, source_address=source_address, expires_at=now + link_lifetime
        )
    return Invitation(user, token)


# -- rights and status ---------------------------------------------------------


def set_admin(db: Session, caller: Caller, user_id: uuid.UUID, admin: bool) -> User:
    """Delegate admin rights to a colleague, or withdraw them (never from the last)."""
    return (_grant_admin if admin else _withdraw_admin)(db, caller, user_id)


# Two actions, so a refused grant and a refused withdrawal are told apart in the log.
@audits_refusals("account.admin_granted")
def _grant_admin(db: Session, caller: Caller, user_id: uuid.UUID) -> User:
    return _set_admin(db, caller, user_id, True)


@audits_refusals("account.admin_withdrawn")
def _withdraw_admin(db: Session, caller: Caller, user_id: uuid.UUID) -> User:
    return _set_admin(db, caller, user_id, False)


def _set_admin(db: Session, caller: Caller, user_id: uuid.UUID, admin: bool) -> User:
    user = _own_member(db, caller, user_id)
    if user.is_admin == admin:
        return user
    if not admin and _other_admins(db, user) == 0:
        raise Conflict("member.last_admin")
    before = describe(user)
    user.is_admin = admin
    db.flush()
    action = "account.admin_granted" if admin else "account.admin_withdrawn"
    changed(db, caller, action, org_id=user.organisation_id, before=before, after=describe(user))
    return user


@audits_refusals("account.changed")
def set_outside_eea(db: Session, caller: Caller, user_id: uuid.UUID, value: bool) -> User:
    user = _own_member(db, caller, user_id)
    if user.outside_eea == value:
        return user
    before = describe(user)
    user.outside_eea = value
    db.flush()
    changed(
        db,
        caller,
        "account.changed",
        org_id=user.organisation_id,
        before=before,
        after=describe(user),
    )
    if value:
        # Agreements that keep staff inside the EU/EEA now refuse this technician.
        announce(db, _user_event(user, RevocationKind.USER_RESTRICTED, caller))
    return user


def _user_event(user: User, kind: RevocationKind, caller: Caller) -> Revocation:
    return Revocation(
        kind=kind, occurred_at=caller.now, user_id=user.id, vendor_org_id=user.organisation_id
    )


def _stop(db: Session, user: User, status: UserStatus, caller: Caller) -> None:
    user.status = status
    user.status_changed_at = caller.now
    # Their browser and API sessions end now, not at the next page they load.
    logins.end_all_for_user(db, user.id)
    db.flush()


def restored_status(user: User) -> UserStatus:
    """Active if the account has enrolled (password and factor), else pending."""
    enrolled = user.password_hash is not None and bool(user.confirmed_factors)
    return UserStatus.ACTIVE if enrolled else UserStatus.PENDING


@audits_refusals("account.deactivated")
def deactivate(db: Session, caller: Caller, user_id: uuid.UUID) -> User:
    user = _own_member(db, caller, user_id)
    _not_yourself(caller, user)
    if user.status == UserStatus.SUSPENDED:
        raise PortalError("member.suspended_by_operator")
    if user.status == UserStatus.DISABLED:
        return user
    if user.is_admin and _other_admins(db, user) == 0:
        raise Conflict("member.last_admin")
    before = describe(user)
    _stop(db, user, UserStatus.DISABLED, caller)
    changed(
        db,
        caller,
        "account.deactivated",
        org_id=user.organisation_id,
        before=before,
        after=describe(user),
    )
    announce(db, _user_event(user, RevocationKind.USER_DEACTIVATED, caller))
    return user


@audits_refusals("account.reactivated")
def reactivate(db: Session, caller: Caller, user_id: uuid.UUID) -> User:
    user = _manageable(caller, get_member(db, caller, user_id))
    if user.status != UserStatus.DISABLED:
        raise PortalError("member.not_deactivated")
    before = describe(user)
    user.status = restored_status(user)
    user.status_changed_at = caller.now
    db.flush()
    changed(
        db,
        caller,
        "account.reactivated",
        org_id=user.organisation_id,
        before=before,
        after=describe(user),
    )
    return user


@audits_refusals("account.suspended")
def suspend(db: Session, caller: Caller, user_id: uuid.UUID) -> User:
    """The operator stops an account at once, in any organisation."""
    caller.require_operator()
    user = get_member(db, caller, user_id)
    _not_yourself(caller, user)
    if user.status == UserStatus.SUSPENDED:
        return user
    before = describe(user)
    _stop(db, user, UserStatus.SUSPENDED, caller)
    changed(
        db,
        caller,
        "account.suspended",
        org_id=user.organisation_id,
        before=before,
        after=describe(user),
    )
    announce(db, _user_event(user, RevocationKind.USER_SUSPENDED, caller))
    return user


@audits_refusals("account.unsuspended")
def unsuspend(db: Session, caller: Caller, user_id: uuid.UUID) -> User:
    caller.require_operator()
    user = get_member(db, caller, user_id)
    if user.status != UserStatus.SUSPENDED:
        raise PortalError("member.not_suspended")
    before = describe(user)
    user.status = restored_status(user)
    user.status_changed_at = caller.now
    db.flush()
    changed(
        db,
        caller,
        "account.unsuspended",
        org_id=user.organisation_id,
        before=before,
        after=describe(user),
    )
    return user
