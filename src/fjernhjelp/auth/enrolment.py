"""One-time enrolment links: a new account sets its password and its first factor.

The link is the only way an account becomes active; the operator's first account gets
one from the command line, everyone else from an admin in the portal.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from fjernhjelp.audit.log import Actor, Outcome, record
from fjernhjelp.auth import factors
from fjernhjelp.auth.models import EnrolmentLink, Factor, FactorKind, User, UserStatus
from fjernhjelp.auth.passwords import Passwords, policy_problems
from fjernhjelp.auth.tokens import new_token, token_hash


class LinkInvalid(Exception):
    """The link is unknown, used or expired; ``reason`` goes to the audit log."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class EnrolmentRejected(Exception):
    """The form was filled in wrongly; ``problems`` are message keys to show."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__(", ".join(problems))
        self.problems = problems


@dataclass(frozen=True, slots=True)
class PendingTotp:
    factor: Factor
    secret: str


def issue_link(
    db: Session,
    user: User,
    *,
    actor: Actor,
    now: datetime,
    lifetime: timedelta,
    source_address: str | None = None,
) -> str:
    """A new link for ``user``; any earlier unused link for the same user stops working."""
    db.execute(
        update(EnrolmentLink)
        .where(EnrolmentLink.user_id == user.id, EnrolmentLink.used_at.is_(None))
        .values(expires_at=now)
        .execution_options(synchronize_session=False)
    )
    token = new_token()
    db.add(
        EnrolmentLink(
            token_hash=token_hash(token), user=user, created_at=now, expires_at=now + lifetime
        )
    )
    record(
        db,
        "account.enrolment_link.issued",
        Outcome.SUCCESS,
        actor=actor,
        customer_org_id=user.organisation_id,
        source_address=source_address,
        details={"user": user.username, "expires_at": (now + lifetime).isoformat()},
    )
    db.flush()
    return token


def open_link(db: Session, token: str, now: datetime) -> EnrolmentLink:
    link = db.execute(
        select(EnrolmentLink).where(EnrolmentLink.token_hash == token_hash(token))
    ).scalar_one_or_none()
    if link is None:
        raise LinkInvalid("unknown_link")
    if link.used_at is not None:
        raise LinkInvalid("used_link")
    if now >= link.expires_at:
        raise LinkInvalid("expired_link")
    if link.user.status not in (UserStatus.PENDING, UserStatus.ACTIVE):
        raise LinkInvalid(f"user_{link.user.status}")
    return link


def pending_totp(db: Session, at_rest_key: bytes, link: EnrolmentLink) -> PendingTotp:
    """The unconfirmed TOTP factor shown on the enrolment page (made once, then reused,
    so reloading the page does not invalidate the QR code already scanned)."""
    user = link.user
    existing = next(
        (f for f in user.factors if f.kind == FactorKind.TOTP and not f.confirmed), None
    )
    if existing is not None:
        return PendingTotp(existing, factors.totp_secret(at_rest_key, existing))
    factor, secret = factors.start_totp(db, at_rest_key, user, label="Authenticator")
    return PendingTotp(factor, secret)


def complete(
    db: Session,
    *,
    link: EnrolmentLink,
    passwords: Passwords,
    at_rest_key: bytes,
    password: str,
    password_again: str,
    code: str,
    min_length: int,
    now: datetime,
    source_address: str | None,
) -> User:
    user = link.user
    problems = policy_problems(
        password, min_length=min_length, username=user.username, email=user.email
    )
    if password != password_again:
        problems.append("password.mismatch")
    if problems:
        raise EnrolmentRejected(problems)
    pending = pending_totp(db, at_rest_key, link)
    try:
        factors.confirm_totp(db, at_rest_key, pending.factor, code)
    except factors.FactorRejected as exc:
        record(
            db,
            "account.enrolment",
            Outcome.FAILURE,
            actor=Actor.of(user),
            reason=exc.failure.value,
            source_address=source_address,
            factor="totp",
        )
        raise EnrolmentRejected(["factor.wrong_code"]) from exc
    user.password_hash = passwords.hash(password)
    user.password_changed_at = now
    user.status = UserStatus.ACTIVE
    link.used_at = now
    record(
        db,
        "account.enrolment",
        Outcome.SUCCESS,
        actor=Actor.of(user),
        customer_org_id=user.organisation_id,
        source_address=source_address,
        factor="totp",
        details={"factor_label": pending.factor.label},
    )
    db.flush()
    return user
