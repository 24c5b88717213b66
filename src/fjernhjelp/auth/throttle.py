"""Failure counters and lockout with back-off, per account name and per source address
(logins), and per source address and overall (Support codes).

The counters live in the database that all nodes share, so a guesser gains nothing by
spreading attempts over nodes. The account key is the *typed* name, whether or not such
an account exists: an unknown name locks exactly like a real one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from fjernhjelp.addresses import source_prefix
from fjernhjelp.auth.models import Throttle

# Failures older than this are forgotten, so an occasional typo never adds up.
FORGET_AFTER = timedelta(hours=24)


@dataclass(frozen=True, slots=True)
class ThrottleRule:
    failures_before_lockout: int
    base_seconds: int
    max_seconds: int

    def lockout_for(self, failures: int) -> timedelta | None:
        over = failures - self.failures_before_lockout
        if over < 0:
            return None
        return timedelta(seconds=min(self.base_seconds * 2 ** min(over, 30), self.max_seconds))


def account_key(username: str) -> str:
    return "account:" + username.strip().lower()[:150]


def address_key(address: str | None) -> str:
    return "address:" + (address or "unknown")


def support_code_address_key(address: str | None) -> str:
    """Support codes guessed from one place. An IPv6 address counts by its /64: whoever
    holds one address usually holds the whole prefix and could rotate through it."""
    return "support_code_address:" + source_prefix(address or "unknown")[:100]


def support_code_overall_keys(now: datetime) -> tuple[str, str]:
    """Support codes guessed by anyone, counted per clock hour: (this hour's key, the
    previous hour's). Failures are counted on the first; a lockout on either holds, so
    one that began just before the hour turned still runs its course."""

    def key(at: datetime) -> str:
        return "support_code_overall:" + at.strftime("%Y-%m-%dT%H")

    return key(now), key(now - timedelta(hours=1))


def locked_until(db: Session, keys: list[str], now: datetime) -> datetime | None:
    """The latest lockout among ``keys`` that is still running, or None."""
    rows = db.execute(select(Throttle).where(Throttle.key.in_(keys))).scalars().all()
    ends = [r.locked_until for r in rows if r.locked_until and r.locked_until > now]
    return max(ends) if ends else None


def record_failure(db: Session, key: str, rule: ThrottleRule, now: datetime) -> datetime | None:
    """Count one failure; return the end of a lockout if this failure started one.

    An atomic upsert: parallel guesses each increment, none is lost to a race.
    """
    insert = postgresql.insert if db.get_bind().dialect.name == "postgresql" else sqlite.insert
    first = insert(Throttle).values(key=key, failures=1, last_failure_at=now, locked_until=None)
    stmt = first.on_conflict_do_update(
        index_elements=[Throttle.key],
        set_={"failures": Throttle.failures + 1, "last_failure_at": now},
    ).returning(Throttle.failures, Throttle.last_failure_at)
    failures = db.execute(stmt).one()[0]
    row = db.get(Throttle, key, populate_existing=True)
    assert row is not None
    lock = rule.lockout_for(failures)
    if lock is None:
        return None
    row.locked_until = now + lock
    return row.locked_until


def forget_stale(db: Session, key: str, now: datetime) -> None:
    row = db.get(Throttle, key)
    stale = row is not None and row.last_failure_at and now - row.last_failure_at > FORGET_AFTER
    if stale and row is not None and (not row.locked_until or row.locked_until <= now):
        db.delete(row)
        db.flush()


def reset(db: Session, key: str) -> None:
    row = db.get(Throttle, key)
    if row is not None:
        db.delete(row)
