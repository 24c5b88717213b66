"""Audit events for requests refused at the door, before any service ran: a form sent
from a signed-in browser without its CSRF token, and the probing tallied per address
(server/probes.py counts it in memory; this writes the tally)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from fjernhjelp.audit.log import Actor, Outcome, record
from fjernhjelp.auth import logins
from fjernhjelp.auth.logins import SessionPolicy
from fjernhjelp.caller import Caller

PROBING = "security.probing"


def csrf_refused(
    db: Session,
    token: str,
    *,
    policy: SessionPolicy,
    now: datetime,
    reason: str,
    source_address: str | None,
    method: str,
    path: str,
) -> bool:
    """Audit a CSRF refusal against the account whose login cookie came with it.

    The refusal happens before the session is looked up; find who it was, so the event
    names the account whose browser was used. False (nothing written) if the cookie
    opens no session: that is probing, which the caller counts instead.
    """
    row = logins.find(db, token, policy=policy, now=now)
    if row is None:
        return False
    caller = Caller.of_person(row.user, now, source_address, row.factor_kind)
    record(
        db,
        "security.csrf_refused",
        Outcome.DENIED,
        actor=caller.actor,
        reason=reason,
        source_address=caller.source_address,
        details={"method": method, "path": path},
    )
    return True


def probing(db: Session, source_address: str | None, details: dict[str, Any]) -> None:
    """One tallied window of probing from one address (or the overflow of many)."""
    record(
        db,
        PROBING,
        Outcome.DENIED,
        actor=Actor.named(None),  # whoever probes is nobody we know
        reason="probing",
        source_address=source_address,
        details=details,
    )
