"""Asking for a remote session (remote.sessions.request) when the machine cannot be had:
an id the technician may not see is refused as "no_such_machine" and audited; a failing
database is the server's fault and is never reported (or audited) as a missing machine."""

from __future__ import annotations

import os
import uuid

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from fjernhjelp.audit.models import AuditEvent
from fjernhjelp.caller import Caller
from fjernhjelp.refusals import SessionRefused
from fjernhjelp.remote import sessions as remote_sessions
from fjernhjelp.server.state import AppState
from tests.portal.access_world import build_site


def _request(db: Session, state: AppState, technician, machine_id: uuid.UUID):  # type: ignore[no-untyped-def]
    return remote_sessions.request(
        db,
        Caller.of_person(technician, state.now()),
        machine_id=machine_id,
        technician_key=os.urandom(32),
        signing_key=state.keys.signing,
        node_id="node-test",
    )


def _requested(db: Session) -> list[AuditEvent]:
    query = select(AuditEvent).where(AuditEvent.action == "access.requested")
    return list(db.execute(query.order_by(AuditEvent.seq)).scalars())


def test_an_unknown_machine_is_refused_as_no_such_machine(db, state) -> None:  # type: ignore[no-untyped-def]
    site = build_site(db, state)
    db.commit()
    unknown = uuid.uuid4()
    with pytest.raises(SessionRefused) as refused:
        _request(db, state, site.world.tech.user, unknown)
    db.commit()
    assert refused.value.reason == "no_such_machine"
    (event,) = _requested(db)
    assert (event.outcome, event.reason, event.machine_id) == (
        "denied",
        "no_such_machine",
        str(unknown),
    )


def test_a_database_failure_is_not_reported_as_no_such_machine(db, state) -> None:  # type: ignore[no-untyped-def]
    site = build_site(db, state)
    machine = site.machine("lege-pc-01")
    technician = site.world.tech.user
    db.commit()
    technician_id, machine_id = technician.id, machine.id
    # A real fault underneath, not a stand-in: the machines table is not there (as after
    # a half-applied migration), so the lookup's own query fails in the database. Only
    # inside this test's transaction: DDL is transactional on SQLite and PostgreSQL, and
    # the rollback puts the table back.
    db.execute(text("ALTER TABLE machines RENAME TO machines_gone"))
    try:
        with pytest.raises(DBAPIError) as failure:
            _request(db, state, technician, machine_id)
        # The database's own complaint about that table ("no such table: machines",
        # 'relation "machines" does not exist'), not one raised later by anything the
        # refusal path did after swallowing it.
        assert "machines" in str(failure.value.orig)
    finally:
        db.rollback()
    assert _requested(db) == []
    # The table is back and the same request now goes through.
    issued = _request(db, state, db.get(type(technician), technician_id), machine_id)
    assert issued.session.machine_id == machine_id
