"""Creating accounts and changing them; every change is an audit event with before and after."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from fjernhjelp.audit.log import Actor, Outcome, record
from fjernhjelp.auth.models import User, UserStatus
from fjernhjelp.portal.models import Organisation
from fjernhjelp.refusals import Refusal


class AccountError(Refusal):
    """A new account's name or address is refused (the reason is a catalogue key)."""


def _valid_username(username: str) -> bool:
    return 3 <= len(username) <= 64 and all(c.isalnum() or c in "._-@" for c in username)


def operator_exists(db: Session) -> bool:
    return (
        db.execute(select(func.count()).select_from(User).where(User.is_operator)).scalar_one() > 0
    )


def create_user(
    db: Session,
    *,
    organisation: Organisation,
    username: str,
    email: str,
    display_name: str,
    is_operator: bool = False,
    is_admin: bool = False,
    is_technician: bool = False,
    actor: Actor,
    source_address: str | None = None,
) -> User:
    """A pending account; it becomes active through its enrolment link."""
    username = username.strip().lower()
    if not _valid_username(username):
        raise AccountError("account.bad_username")
    if "@" not in email or len(email) > 254:
        raise AccountError("account.bad_email")
    taken = db.execute(
        select(User.id).where(func.lower(User.username) == username)
    ).scalar_one_or_none()
    if taken is not None:
        raise AccountError("account.username_taken")
    user = User(
        organisation=organisation,
        username=username,
        email=email.strip(),
        display_name=display_name.strip() or username,
        is_operator=is_operator,
        is_admin=is_admin,
        is_technician=is_technician,
        status=UserStatus.PENDING,
    )
    db.add(user)
    db.flush()
    record(
        db,
        "account.created",
        Outcome.SUCCESS,
        actor=actor,
        customer_org_id=organisation.id,
        source_address=source_address,
        details={"before": None, "after": describe(user)},
    )
    return user


def describe(user: User) -> dict[str, object]:
    """The audited view of an account: what an auditor needs, no secrets."""
    return {
        "id": str(user.id),
        "username": user.username,
        "email": user.email,
        "display_name": user.display_name,
        "organisation": str(user.organisation_id),
        "roles": user.roles,
        "status": user.status,
    }
