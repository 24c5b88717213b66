"""Re-enrolling an account that is already active: what it ends, and who is told.

A fresh enrolment link lets whoever holds it choose the account's password and second
factor. For an account someone is using, that is a takeover unless the people concerned
see it happen. So completing such a link replaces every earlier factor and ends every
login session (auth/enrolment.py), and here: cuts the person's running remote sessions,
writes the event where each affected organisation reads its log (the person's own and
every customer whose grant in force the person can act under), and leaves a notice the
person sees at the next login.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, exists, or_, select
from sqlalchemy.orm import Session

from fjernhjelp.audit.log import Actor, Outcome, record
from fjernhjelp.auth.models import User
from fjernhjelp.portal import notifications
from fjernhjelp.portal.models import Grant, GrantStatus, grant_technicians
from fjernhjelp.portal.revocations import Revocation, RevocationKind, announce

NOTICE = "account_reenrolled"


def affected_customers(db: Session, user: User) -> list[uuid.UUID]:
    """Customers with a grant in force the person can act under: one that names them,
    or, for a technician, one open to every technician of their organisation."""
    names_them = exists().where(
        grant_technicians.c.grant_id == Grant.id, grant_technicians.c.user_id == user.id
    )
    under: list[ColumnElement[bool]] = [names_them]
    if user.is_technician:
        under.append(~exists().where(grant_technicians.c.grant_id == Grant.id))
    rows = db.execute(
        select(Grant.customer_org_id)
        .where(
            Grant.vendor_org_id == user.organisation_id,
            Grant.status == GrantStatus.ACTIVE,
            or_(*under),
        )
        .distinct()
    ).scalars()
    return sorted({c for c in rows if c != user.organisation_id}, key=str)


def record_everywhere(
    db: Session,
    user: User,
    action: str,
    *,
    actor: Actor,
    source_address: str | None,
    details: dict[str, Any],
    customers: list[uuid.UUID] | None = None,
) -> list[uuid.UUID]:
    """One event for the person's organisation and one for each affected customer
    (an organisation reads the events that name it); returns the customers."""
    if customers is None:
        customers = affected_customers(db, user)
    for org_id in [user.organisation_id, *customers]:
        record(
            db,
            action,
            Outcome.SUCCESS,
            actor=actor,
            customer_org_id=org_id,
            source_address=source_address,
            details={"user": user.username, "organisation": str(user.organisation_id), **details},
        )
    return customers


def link_issued(
    db: Session,
    user: User,
    *,
    actor: Actor,
    source_address: str | None,
    expires_at: datetime,
) -> None:
    """A link for an active account was handed out: the customers who rely on the
    person see it now, before anyone uses it (the organisation's own event is written
    by auth.enrolment.issue_link)."""
    customers = affected_customers(db, user)
    for org_id in customers:
        record(
            db,
            "account.enrolment_link.issued",
            Outcome.SUCCESS,
            actor=actor,
            customer_org_id=org_id,
            source_address=source_address,
            details={
                "user": user.username,
                "organisation": str(user.organisation_id),
                "account_active": True,
                "expires_at": expires_at.isoformat(),
            },
        )


def completed(
    db: Session,
    user: User,
    *,
    issued_by: str | None,
    replaced_factors: int,
    ended_login_sessions: int,
    now: datetime,
    source_address: str | None,
) -> None:
    """The link has replaced the factors of an active account (same transaction)."""
    record_everywhere(
        db,
        user,
        "account.reenrolled",
        actor=Actor.of(user),
        source_address=source_address,
        details={
            "link_issued_by": issued_by,
            "factors_replaced": replaced_factors,
            "login_sessions_ended": ended_login_sessions,
        },
    )
    # Remote sessions opened under the old factors end too: whoever holds them may not
    # be the person who now holds the account.
    announce(
        db,
        Revocation(
            kind=RevocationKind.USER_REENROLLED,
            occurred_at=now,
            user_id=user.id,
            vendor_org_id=user.organisation_id,
        ),
    )
    notifications.notify_person(
        db, user, NOTICE, when=now.strftime("%Y-%m-%d %H:%M UTC"), by=issued_by or "?"
    )
