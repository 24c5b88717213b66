"""Keeping a recorded refusal's audit event where no request does it.

A request's session is closed by ``server/deps.get_db``, which commits the transaction of
a Refusal its service marked ``recorded`` and rolls back anything else. The agents'
control link and the relay open their own sessions in worker threads; they wrap the
service call in ``refusals_kept`` to keep the same rule in the same place.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.orm import Session

from fjernhjelp.refusals import Refusal


@contextmanager
def refusals_kept(db: Session) -> Iterator[None]:
    """Commit the event of a refusal its service recorded, then let it propagate.
    Whatever else was pending stays uncommitted (the session's close rolls it back)."""
    try:
        yield
    except Refusal as exc:
        if exc.recorded:
            db.commit()
        raise
