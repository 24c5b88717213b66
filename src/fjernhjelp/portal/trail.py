"""Audit events for portal changes and refusals, in the shape every portal action uses.

A change records ``details={"before": ..., "after": ...}`` in the same transaction as
the change. A refusal (a rule, a role, an id the caller may not see) is recorded after
rolling the attempt back, so nothing of it survives but the event.

Each service that changes something names its own action once, ``@audits_refusals(...)``
over its definition: a page, an API route or a command only calls it and commits.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Concatenate, ParamSpec, TypeVar

from sqlalchemy.orm import Session

from fjernhjelp.audit.log import Outcome, record
from fjernhjelp.caller import Caller
from fjernhjelp.refusals import NotAllowed, NotFound, Refusal

P = ParamSpec("P")
R = TypeVar("R")


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


def refusal_reason(exc: Refusal) -> str:
    """The reason the log records: a refusal's own, except that every NotFound is plain
    "not_found" (its details name the kind of object and the id)."""
    return "not_found" if isinstance(exc, NotFound) else exc.reason


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
    except Refusal as exc:
        savepoint.rollback()
        details: dict[str, Any] | None = None
        if isinstance(exc, NotFound):
            details = {"object": exc.kind, "id": exc.object_id}
        elif not isinstance(exc, NotAllowed) and exc.params:
            # A role refusal's ``needed`` stays out: the reason says it all.
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


def audits_refusals(
    action: str,
) -> Callable[
    [Callable[Concatenate[Session, Caller, P], R]], Callable[Concatenate[Session, Caller, P], R]
]:
    """Over a service ``def f(db, caller, ...)``: run it inside ``refusals_audited(db,
    caller, action)``. ``action`` is the one the service's success records, so a change
    and its refusal share a name whichever page, route or command asked for it.

    A service that calls another audited one records one refusal only, its own: undoing
    its savepoint undoes the inner one's event too."""

    def wrap(
        service: Callable[Concatenate[Session, Caller, P], R],
    ) -> Callable[Concatenate[Session, Caller, P], R]:
        @functools.wraps(service)
        def audited(db: Session, caller: Caller, /, *args: P.args, **kwargs: P.kwargs) -> R:
            with refusals_audited(db, caller, action):
                return service(db, caller, *args, **kwargs)

        return audited

    return wrap
