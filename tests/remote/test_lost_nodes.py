"""A node that died without a word: its sessions are ended by whichever survivor notices
(remote.sessions.end_sessions_of_lost_nodes), each once, with the reason "node_lost";
the survivors' own sessions and those already over are left alone."""

from __future__ import annotations

import json
import os

from sqlalchemy import select

from fjernhjelp.audit.models import AuditEvent
from fjernhjelp.audit.verify import verify_chain
from fjernhjelp.caller import Caller
from fjernhjelp.remote import sessions as remote_sessions
from fjernhjelp.remote.models import RemoteSession, SessionStatus
from tests.portal.access_world import build_site


def test_a_lost_nodes_sessions_end_once_and_only_theirs(db, state) -> None:  # type: ignore[no-untyped-def]
    site = build_site(db, state)
    machine = site.machine("lege-pc-01")
    tech = Caller.of_person(site.world.tech.user, state.now())

    def request(node: str) -> RemoteSession:
        issued = remote_sessions.request(
            db,
            tech,
            machine_id=machine.id,
            technician_key=os.urandom(32),
            signing_key=state.keys.signing,
            node_id=node,
        )
        db.commit()
        return issued.session

    lost = [request("node-dead"), request("node-dead")]
    survivor = request("node-alive")
    over = request("node-dead")
    remote_sessions.end(db, over.id, now=state.now(), reason="technician_closed")
    db.commit()
    assert remote_sessions.nodes_with_live_sessions(db) == {"node-dead", "node-alive"}

    ended = remote_sessions.end_sessions_of_lost_nodes(db, ["node-dead"], now=state.now())
    db.commit()
    assert sorted(s.id for s in ended) == sorted(s.id for s in lost)
    # A second survivor sweeping after the first finds nothing left to end.
    assert remote_sessions.end_sessions_of_lost_nodes(db, ["node-dead"], now=state.now()) == []
    db.commit()

    db.expire_all()
    for session in lost:
        row = db.get(RemoteSession, session.id)
        assert row is not None
        assert (row.status, row.end_reason) == (SessionStatus.ENDED, "node_lost")
    alive = db.get(RemoteSession, survivor.id)
    assert alive is not None and alive.status != SessionStatus.ENDED
    assert remote_sessions.nodes_with_live_sessions(db) == {"node-alive"}
    events = db.execute(
        select(AuditEvent).where(
            AuditEvent.action == "session.ended", AuditEvent.reason == "node_lost"
        )
    ).scalars()
    assert sorted(json.loads(e.details)["session"] for e in events) == sorted(
        str(s.id) for s in lost
    )
    assert verify_chain(db).ok
