"""One-time enrolment links: a new account sets its password and its first factor.

The link is the only way an account becomes active; the operator's first account gets
one from the command line, everyone else from an admin in the portal. A link for an
account that is already active re-enrols it: the new password and factor replace every
earlier one and its sessions end (portal/reenrolment.py says who is told).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from fjernhjelp.audit.log import Actor, Outcome, record
from fjernhjelp.auth import factors, logins
from fjernhjelp.auth.models import EnrolmentLink, Factor, FactorKind, User, UserStatus
from fjernhjelp.auth.passwords import Passwords, policy_problems
from fjernhjelp.auth.tokens import new_token, token_hash
from fjernhjelp.caller import Caller
from fjernhjelp.db.dml import rows_matched
from fjernhjelp.portal import reenrolment
from fjernhjelp.refusals import NotAllowed


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
            token_hash=token_hash(token),
            user=user,
            created_at=now,
            expires_at=now + lifetime,
            issued_by=actor.name,
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


def activate_for_demo(
    db: Session, caller: Caller, user: User, *, passwords: Passwords, at_rest_key: bytes,
    password: str,
) -> str:  # fmt: skip
    """Make a demo account active at once (``fjernhjelp demo``): ``password`` set and a
    confirmed TOTP factor, audited as an enrolment. Returns the factor's secret. Only the
    system (the demo's seeding) may skip the link; a person never can."""
    if not caller.is_host_operator:
        raise NotAllowed("system")
    user.password_hash = passwords.hash(password)
    user.password_changed_at = caller.now
    user.status = UserStatus.ACTIVE
    factor, secret = factors.start_totp(db, at_rest_key, user, "Demo authenticator")
    factor.confirmed = True
    record(
        db,
        "account.enrolment",
        Outcome.SUCCESS,
        actor=caller.actor,
        customer_org_id=user.organisation_id,
        factor="totp",
        details={"user": user.username, "demo": True},
    )
    return secret


def link_refused(db: Session, exc: LinkInvalid, source_address: str | None) -> None:
    """Audit a link that was refused (``open_link``, or ``complete`` losing a race). The
    one who holds it is nobody we know: a link that does not work names no account."""
    record(
        db,
        "account.enrolment",
        Outcome.DENIED,
        actor=Actor.named(None),
        reason=exc.reason,
        source_address=source_address,
    )


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
    """Set the password and confirm the TOTP factor, spending the link. Raises
    EnrolmentRejected for a form to correct (commit: the event of a wrong code stays),
    or LinkInvalid when another use of the same link got there first (roll back)."""
    user = link.user
    problems = policy_problems(
        password, min_length=min_length, username=user.username, email=user.email
    )
    if password != password_again:
        problems.append("password.mismatch")
    if problems:
        raise EnrolmentRejected(problems)
    # Spend the link first, in one statement, and only if nobody else has: of two posts
    # of the same link at the same moment, the second finds no unused row and is
    # refused (on PostgreSQL it waits for the first to commit, then sees it used). A
    # wrong code gives the link back by rolling the savepoint back.
    attempt = db.begin_nested()
    claimed = rows_matched(
        db,
        update(EnrolmentLink)
        .where(
            EnrolmentLink.id == link.id,
            EnrolmentLink.used_at.is_(None),
            EnrolmentLink.expires_at > now,
        )
        .values(used_at=now)
        .execution_options(synchronize_session=False),
    )
    if claimed != 1:
        attempt.rollback()
        raise LinkInvalid("used_link")
    pending = pending_totp(db, at_rest_key, link)
    try:
        factors.confirm_totp(db, at_rest_key, pending.factor, code)
    except factors.FactorRejected as exc:
        attempt.rollback()
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
    attempt.commit()
    set_committed_value(link, "used_at", now)
    reenrolling = user.status == UserStatus.ACTIVE
    user.password_hash = passwords.hash(password)
    user.password_changed_at = now
    user.status = UserStatus.ACTIVE
    record(
        db,
        "account.enrolment",
        Outcome.SUCCESS,
        actor=Actor.of(user),
        customer_org_id=user.organisation_id,
        source_address=source_address,
        factor="totp",
        details={"factor_label": pending.factor.label, "reenrolment": reenrolling},
    )
    if reenrolling:
        _replace_everything_else(db, user, link, pending.factor, now, source_address)
    db.flush()
    return user


def _replace_everything_else(
    db: Session,
    user: User,
    link: EnrolmentLink,
    kept: Factor,
    now: datetime,
    source_address: str | None,
) -> None:
    """Whoever held the old password or factors, or a session opened with them, holds
    nothing now."""
    replaced = [f for f in user.factors if f.id != kept.id]
    for factor in replaced:
        user.factors.remove(factor)
    db.flush()
    ended = logins.end_all_for_user(db, user.id)
    reenrolment.completed(
        db,
        user,
        issued_by=link.issued_by,
        replaced_factors=sum(1 for f in replaced if f.confirmed),
        ended_login_sessions=ended,
        now=now,
        source_address=source_address,
    )
