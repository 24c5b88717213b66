"""The expiry sweep: ends what ran out, once, with an audit event and a revocation.

Grants and agreements past their end are marked expired (so each expiry is announced and
audited exactly once, even with several server nodes sweeping: rows are claimed with
SKIP LOCKED on PostgreSQL, and SQLite has one writer). Accounts unused for
``inactive_after`` are deactivated and their organisation's admins get a notice. Support
codes nobody entered in time end their session (remote/support.expire_codes).
``decide()`` checks the times itself, so access ends at the moment of expiry whether or
not the sweep has run; the sweep is what cuts sessions already running.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.orm import Session, sessionmaker

from fjernhjelp.audit.log import Outcome, record
from fjernhjelp.auth import logins
from fjernhjelp.auth.models import User, UserStatus
from fjernhjelp.caller import Caller
from fjernhjelp.logs import fault
from fjernhjelp.portal import agreements, grants, members, notifications
from fjernhjelp.portal.models import Agreement, AgreementStatus, Grant, GrantStatus
from fjernhjelp.portal.revocations import Revocation, RevocationKind, announce
from fjernhjelp.remote import support

_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SweepReport:
    grants_expired: int = 0
    agreements_expired: int = 0
    users_deactivated: int = 0
    sessions_purged: int = 0
    support_codes_expired: int = 0


T = TypeVar("T")


def _claim(db: Session, model: type[T], *conditions: ColumnElement[bool]) -> list[T]:
    """Rows of ``model`` matching ``conditions`` that no other sweeping node holds."""
    # ``of``: only the claimed rows, not the eagerly joined ones (PostgreSQL refuses to
    # lock the nullable side of an outer join).
    stmt = select(model).where(*conditions).with_for_update(skip_locked=True, of=model)
    return list(db.execute(stmt).unique().scalars().all())


def _system_change(
    db: Session,
    caller: Caller,
    action: str,
    org_id: uuid.UUID,
    before: dict[str, Any],
    after: dict[str, Any],
    reason: str,
) -> None:
    record(
        db,
        action,
        Outcome.SUCCESS,
        actor=caller.actor,
        reason=reason,
        customer_org_id=org_id,
        details={"before": before, "after": after},
    )


def expire_grants(db: Session, now: datetime) -> int:
    system = Caller.system(now)  # the timer, or `fjernhjelp admin sweep`
    due = _claim(
        db,
        Grant,
        Grant.status == GrantStatus.ACTIVE,
        Grant.expires_at.is_not(None),
        Grant.expires_at <= now,
    )
    for grant in due:
        before = grants.describe(grant)
        grant.status = GrantStatus.EXPIRED
        grant.ended_at = now
        db.flush()
        _system_change(
            db,
            system,
            "grant.expired",
            grant.customer_org_id,
            before,
            grants.describe(grant),
            "expired",
        )
        announce(db, grants.expiry_event(grant, now))
        for org_id in (grant.customer_org_id, grant.vendor_org_id):
            notifications.notify(
                db,
                org_id,
                "grant_expired",
                customer=grant.customer.name,
                vendor=grant.vendor.name,
                group=grant.group.name,
            )
    return len(due)


def expire_agreements(db: Session, now: datetime) -> int:
    system = Caller.system(now)  # the timer, or `fjernhjelp admin sweep`
    due = _claim(
        db,
        Agreement,
        Agreement.status == AgreementStatus.ACTIVE,
        Agreement.valid_until.is_not(None),
        Agreement.valid_until <= now,
    )
    for agreement in due:
        before = agreements.describe(agreement)
        agreement.status = AgreementStatus.EXPIRED
        agreement.ended_at = now
        db.flush()
        _system_change(
            db,
            system,
            "agreement.expired",
            agreement.customer_org_id,
            before,
            agreements.describe(agreement),
            "expired",
        )
        announce(db, agreements.ending_event(db, agreement, RevocationKind.AGREEMENT_EXPIRED, now))
        for org_id in (agreement.customer_org_id, agreement.vendor_org_id):
            notifications.notify(
                db,
                org_id,
                "agreement_expired",
                customer=agreement.customer.name,
                vendor=agreement.vendor.name,
                reference=agreement.reference,
            )
    return len(due)


def _unused_since(cutoff: datetime) -> list[ColumnElement[bool]]:
    # Last use is the latest of: created, enrolled (password set), logged in, and
    # status changed (a reactivated account gets a fresh period).
    return [
        User.created_at < cutoff,
        or_(User.last_login_at.is_(None), User.last_login_at < cutoff),
        or_(User.password_changed_at.is_(None), User.password_changed_at < cutoff),
        or_(User.status_changed_at.is_(None), User.status_changed_at < cutoff),
    ]


def deactivate_inactive(db: Session, now: datetime, inactive_after: timedelta) -> int:
    system = Caller.system(now)  # the timer, or `fjernhjelp admin sweep`
    cutoff = now - inactive_after
    due = _claim(
        db,
        User,
        User.status.in_([UserStatus.ACTIVE, UserStatus.PENDING]),
        *_unused_since(cutoff),
    )
    for user in due:
        before = members.describe(user)
        user.status = UserStatus.DISABLED
        user.status_changed_at = now
        logins.end_all_for_user(db, user.id)
        db.flush()
        _system_change(
            db,
            system,
            "account.deactivated",
            user.organisation_id,
            before,
            members.describe(user),
            "inactive",
        )
        announce(
            db,
            Revocation(
                kind=RevocationKind.USER_DEACTIVATED,
                occurred_at=now,
                user_id=user.id,
                vendor_org_id=user.organisation_id,
            ),
        )
        notifications.notify(
            db,
            user.organisation_id,
            "user_deactivated_inactive",
            name=user.display_name,
            username=user.username,
            days=inactive_after.days,
        )
    return len(due)


def run(db: Session, now: datetime, *, inactive_after: timedelta) -> SweepReport:
    """One sweep in the caller's transaction; the caller commits (then events go out)."""
    return SweepReport(
        grants_expired=expire_grants(db, now),
        agreements_expired=expire_agreements(db, now),
        users_deactivated=deactivate_inactive(db, now, inactive_after),
        sessions_purged=logins.purge_expired(db, now),
        support_codes_expired=support.expire_codes(db, now),
    )


def run_once(
    factory: sessionmaker[Session], clock: Callable[[], datetime], inactive_after: timedelta
) -> SweepReport:
    """One sweep in its own transaction, for the server's timer and the CLI."""
    with factory() as db:
        report = run(db, clock(), inactive_after=inactive_after)
        db.commit()
    if report != SweepReport(sessions_purged=report.sessions_purged):
        _log.info("sweep: %s", report)
    return report


async def every(
    interval: float,
    factory: sessionmaker[Session],
    clock: Callable[[], datetime],
    inactive_after: timedelta,
) -> None:
    """Sweep every ``interval`` seconds until cancelled; a failed sweep is logged and
    tried again next time, never fatal to the server."""
    while True:
        await asyncio.sleep(interval)
        try:
            await asyncio.to_thread(run_once, factory, clock, inactive_after)
        except Exception as exc:
            # One line without the error's text: it can quote parameters (logs.fault).
            _log.error("sweep failed: %s", fault(exc))
