"""Audit events for portal changes and refusals, in the shape every portal action uses.

A change records ``details={"before": ..., "after": ...}`` in the same transaction as
the change. A refusal (a rule, a role, an id the caller may not see) is recorded after
rolling the attempt back, so nothing of it survives but the event.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy.orm import Session

from fjernhjelp.audit.log import Outcome, record
from fjernhjelp.caller import Caller
from fjernhjelp.portal.errors import NotAllowed, NotFound, PortalError


def changed(
    db: Session,
    caller: Caller,
    action: str,
    *,
    org_id: uuid.UUID | None,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
) -> None:
    record(
        db,
        action,
        Outcome.SUCCESS,
        actor=caller.actor,
        customer_org_id=org_id,
        source_address=caller.source_address,
        details={"before": before, "after": after},
    )


def refusal_reason(exc: Exception) -> str:
    if isinstance(exc, PortalError):
        return exc.message_key
    if isinstance(exc, NotFound):
        return "not_found"
    return "not_allowed"


@contextmanager
def refusals_audited(db: Session, caller: Caller, action: str) -> Iterator[None]:
    """Run a change; if it is refused, undo it, audit the refusal, re-raise.

    The change runs inside a SAVEPOINT, so a refusal undoes exactly the change and
    nothing the caller had done before it; the refusal's event is written in the caller's
    transaction and the exception is marked ``recorded``, which tells the request to keep
    it (server/deps.get_db commits). A NotFound is audited against the caller's own
    organisation only, with the id the caller sent: the event must not tell the caller
    (who can read it) whose id it was.
    """
    savepoint = db.begin_nested()
    try:
        yield
    except (PortalError, NotFound, NotAllowed) as exc:
        savepoint.rollback()
        details: dict[str, Any] | None = None
        if isinstance(exc, NotFound):
            details = {"object": exc.kind, "id": exc.object_id}
        elif isinstance(exc, PortalError) and exc.params:
            details = {k: str(v) for k, v in exc.params.items()}
        record(
            db,
            action,
            Outcome.DENIED,
            actor=caller.actor,
            reason=refusal_reason(exc),
            # The caller's own organisation (none for the command line or the system).
            customer_org_id=caller.actor.org_id,
            source_address=caller.source_address,
            details=details,
        )
        exc.recorded = True
        raise
    else:
        savepoint.commit()
