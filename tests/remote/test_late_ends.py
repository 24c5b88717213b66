"""A relay session that ends while the database is away is recorded when it is back:
``session.ended`` with the reason and the time it really ended, marked as recorded
late, once; not left open in the records until the node restarts. The database here is
really unreachable (a PostgreSQL port nobody listens on); the live outage, through a
proxy the test cuts: tests/live/test_live_faults.py."""

from __future__ import annotations

import json
import os
import socket
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.pool import NullPool

from fjernhjelp.audit.models import AuditEvent
from fjernhjelp.audit.verify import verify_chain
from fjernhjelp.caller import Caller
from fjernhjelp.db.engine import make_engine, make_session_factory
from fjernhjelp.remote import sessions as remote_sessions
from fjernhjelp.remote.models import RemoteSession, SessionStatus
from fjernhjelp.server.relay import Outcome
from tests.asyncrun import run_async
from tests.portal.access_world import build_site


def _nobody_listens() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_an_end_during_an_outage_is_recorded_when_the_database_is_back(  # type: ignore[no-untyped-def]
    app, db, state, clock
) -> None:
    site = build_site(db, state)
    tech = Caller.of_person(site.world.tech.user, state.now())
    issued = remote_sessions.request(
        db,
        tech,
        machine_id=site.machine("lege-pc-01").id,
        technician_key=os.urandom(32),
        signing_key=state.keys.signing,
        node_id=state.settings.node_id,
    )
    db.commit()
    session_id = issued.session.id
    endpoint = app.state.access.relay_endpoint
    outcome = Outcome(str(session_id), True, "technician_closed", 1234, 5678)

    reachable = state.db_sessions
    gone = make_engine(f"postgresql://postgres@127.0.0.1:{_nobody_listens()}/x", poolclass=NullPool)
    state.db_sessions = make_session_factory(gone)
    try:
        before = state.now()
        run_async(endpoint.ended(outcome))  # kept, not raised
        after = state.now()
        # Still away at the next round: it keeps waiting.
        clock.advance(seconds=5)
        assert not run_async(app.state.housekeeping.run_logged("late_session_ends"))
    finally:
        state.db_sessions = reachable
        gone.dispose()
    assert len(endpoint.late_ends) == 1
    db.rollback()  # a fresh snapshot: the job writes in its own transaction
    db.expire_all()
    assert db.get(RemoteSession, session_id).status != SessionStatus.ENDED  # type: ignore[union-attr]

    clock.advance(minutes=3)
    assert run_async(app.state.housekeeping.run_logged("late_session_ends"))
    assert run_async(app.state.housekeeping.run_logged("late_session_ends"))  # nothing left
    assert len(endpoint.late_ends) == 0

    db.rollback()  # a fresh snapshot: the job writes in its own transaction
    db.expire_all()
    row = db.get(RemoteSession, session_id)
    assert row is not None
    assert (row.status, row.end_reason) == (SessionStatus.ENDED, "technician_closed")
    # When it ended, not when it was written down.
    assert row.ended_at is not None and before <= row.ended_at <= after
    assert (row.bytes_from_technician, row.bytes_from_agent) == (1234, 5678)
    events = list(
        db.execute(select(AuditEvent).where(AuditEvent.action == "session.ended")).scalars()
    )
    assert len(events) == 1 and events[0].reason == "technician_closed"
    details = json.loads(events[0].details)
    assert details["recorded_late"] is True
    assert details["ended_at"] == row.ended_at.isoformat()
    assert details["session"] == str(session_id)
    assert state.now() - row.ended_at >= timedelta(minutes=3)
    assert verify_chain(db).ok
