"""The server's audit of an agent that would not dial (remote.sessions.record_dial_refusal):
always recorded, under the reporting agent's own organisation; only its own session is
named as one (and cut by the hub), so an agent cannot end or tag another machine's."""

from __future__ import annotations

import json
import os
import uuid

from sqlalchemy import select

from fjernhjelp.audit.models import AuditEvent
from fjernhjelp.caller import Caller
from fjernhjelp.machines.registry import agent_caller
from fjernhjelp.remote import sessions as remote_sessions
from tests.portal.access_world import build_site


def _refusals(db) -> list[AuditEvent]:  # type: ignore[no-untyped-def]
    query = select(AuditEvent).where(AuditEvent.action == "dial.refused").order_by(AuditEvent.seq)
    return list(db.execute(query).scalars())


def test_a_refused_dial_is_audited_whoever_the_session_belongs_to(db, state) -> None:  # type: ignore[no-untyped-def]
    site = build_site(db, state)
    world = site.world
    mine = site.machine("lege-pc-01")
    theirs = site.machine("tann-pc-01", group=site.dentist_group)
    issued = remote_sessions.request(
        db,
        Caller.of_person(world.tech.user, state.now()),
        machine_id=mine.id,
        technician_key=os.urandom(32),
        signing_key=state.keys.signing,
        node_id="node-test",
    )
    db.commit()
    sid = issued.session.id
    details = {"relay": "ws://10.0.0.9:80"}
    mine_agent = agent_caller(mine, state.now(), "198.51.100.7")
    theirs_agent = agent_caller(theirs, state.now(), "198.51.100.8")

    own = remote_sessions.record_dial_refusal(
        db, mine_agent, mine, session_id=sid, reason="not_tls", details=details
    )
    # Another machine names this session: audited as its own refusal, not as this session.
    other = remote_sessions.record_dial_refusal(
        db, theirs_agent, theirs, session_id=sid, reason="other_origin", details=details
    )
    forged = remote_sessions.record_dial_refusal(
        db, mine_agent, mine, session_id=uuid.uuid4(), reason="bad_signature", details=details
    )
    db.commit()
    assert (own, other, forged) == (True, False, False)

    first, second, third = _refusals(db)
    assert all(e.outcome == "denied" for e in (first, second, third))
    assert (first.machine_id, first.reason) == (str(mine.id), "not_tls")
    assert json.loads(first.details)["known_session"] is True
    assert json.loads(first.details)["technician"] == world.tech.username
    assert (second.machine_id, second.actor_name) == (str(theirs.id), "agent@tann-pc-01")
    assert second.customer_org_id == theirs.organisation_id
    # The agent's own address, as on every event it acts in (its Caller).
    assert (first.source_address, second.source_address) == ("198.51.100.7", "198.51.100.8")
    assert json.loads(second.details)["known_session"] is False
    assert "technician" not in json.loads(second.details)
    assert json.loads(third.details)["known_session"] is False
    assert json.loads(third.details)["relay"] == "ws://10.0.0.9:80"
