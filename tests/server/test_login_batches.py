"""Agents' logins and departures in group commits: every attempt still its own audit
event, the chain linear and verified, and a batch that fails loses nothing unsaid
(logins are refused and retried by the agent; departures are written again)."""

from __future__ import annotations

import asyncio
import json
import socket
import uuid
from collections.abc import Sequence

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError

from fjernhjelp.audit import forward
from fjernhjelp.audit.log import Actor, Entry, Outcome, record, record_all
from fjernhjelp.audit.models import AuditEvent
from fjernhjelp.audit.verify import verify_chain
from fjernhjelp.control import statements
from fjernhjelp.control.messages import MachineInfo
from fjernhjelp.machines import connections
from fjernhjelp.machines.models import Machine
from fjernhjelp.portal import groups
from fjernhjelp.refusals import AgentRefused
from fjernhjelp.server.batches import BatchFailed, GroupCommit
from tests.helpers import make_org

INFO = MachineInfo(hostname="lege-pc", os="bench", agent_version="1")


def _machines(db, n: int) -> list[tuple[Machine, Ed25519PrivateKey]]:  # type: ignore[no-untyped-def]
    org = make_org(db)
    group = groups.ensure_default(db, org, Actor.system())
    made = []
    for _ in range(n):
        key = Ed25519PrivateKey.generate()
        machine = Machine(
            organisation_id=org.id,
            group_id=group.id,
            identity_public_key=key.public_key().public_bytes_raw(),
            hostname="lege-pc",
        )
        db.add(machine)
        made.append((machine, key))
    db.commit()
    return made


def _attempt(machine_id: uuid.UUID, key: Ed25519PrivateKey) -> connections.LoginAttempt:
    nonce = uuid.uuid4().bytes * 2
    proof = key.sign(statements.agent_proof_statement(nonce, machine_id))
    return connections.LoginAttempt(machine_id, nonce, proof, INFO, "192.0.2.7")


def _events(db) -> list[AuditEvent]:  # type: ignore[no-untyped-def]
    db.rollback()
    return list(
        db.execute(
            select(AuditEvent)
            .where(AuditEvent.action.in_(("agent.connect", "agent.disconnect")))
            .order_by(AuditEvent.seq)
        ).scalars()
    )


async def test_batched_logins_keep_every_attempt_in_a_chain_that_verifies(state, db) -> None:
    made = _machines(db, 40)
    stranger = Ed25519PrivateKey.generate()
    attempts = [_attempt(m.id, k) for m, k in made]
    # The attack in the storm: a forged proof for a real machine, and an unknown machine.
    attempts[7] = _attempt(made[7][0].id, stranger)
    attempts.append(_attempt(uuid.uuid4(), stranger))
    writes: list[int] = []

    async def write(batch: Sequence[connections.LoginAttempt]) -> list[uuid.UUID | AgentRefused]:
        writes.append(len(batch))

        def run() -> list[uuid.UUID | AgentRefused]:
            with state.db_sessions() as session:
                out = connections.log_in(session, batch, node_id="n1", now=state.now())
                session.commit()
                return out

        return await asyncio.to_thread(run)

    logins = GroupCommit(write, name="test logins", max_batch=16)
    results = await asyncio.gather(*(logins.submit(a) for a in attempts))
    await logins.close()

    # Batched: fewer writes than logins, and none over its bound.
    assert len(writes) < len(attempts) and max(writes) <= 16 and sum(writes) == len(attempts)
    refused = [i for i, r in enumerate(results) if isinstance(r, AgentRefused)]
    assert refused == [7, 40]
    assert {r.reason for r in results if isinstance(r, AgentRefused)} == {
        "bad_signature",
        "unknown_machine",
    }
    events = _events(db)
    # One event per attempt, in the order they were written, none merged.
    assert len(events) == len(attempts)
    assert [e.seq for e in events] == list(range(events[0].seq, events[0].seq + len(events)))
    assert sorted(e.outcome for e in events).count("denied") == 2
    by_machine = {e.machine_id for e in events if e.outcome == "success"}
    assert by_machine == {str(m.id) for i, (m, _) in enumerate(made) if i != 7}
    assert verify_chain(db).ok


async def test_a_failed_login_batch_refuses_its_logins_and_keeps_nothing_of_them(state, db) -> None:
    made = _machines(db, 6)
    failing = {"left": 1}

    async def write(batch: Sequence[connections.LoginAttempt]) -> list[uuid.UUID | AgentRefused]:
        def run() -> list[uuid.UUID | AgentRefused]:
            with state.db_sessions() as session:
                out = connections.log_in(session, batch, node_id="n1", now=state.now())
                if failing["left"]:
                    failing["left"] -= 1
                    # The commit never happens: the database went away mid-batch.
                    raise ConnectionError("database gone")
                session.commit()
                return out

        return await asyncio.to_thread(run)

    logins = GroupCommit(write, name="test logins")
    first = await asyncio.gather(
        *(logins.submit(_attempt(m.id, k)) for m, k in made[:3]), return_exceptions=True
    )
    # Refused, every one: no agent is told it is connected without its event.
    assert all(isinstance(r, BatchFailed) for r in first)
    assert _events(db) == []
    # The agents come back (their back-off) and are written then, the chain intact.
    again = await asyncio.gather(*(logins.submit(_attempt(m.id, k)) for m, k in made))
    await logins.close()
    assert again == [m.id for m, _ in made]
    assert len(_events(db)) == len(made)
    assert verify_chain(db).ok


async def test_departures_survive_a_failed_batch_and_are_written_once(state, db) -> None:
    made = _machines(db, 5)
    failures = {"left": 2}
    written = asyncio.Event()

    async def write(batch: Sequence[connections.Departure]) -> list[None]:
        def run() -> None:
            with state.db_sessions() as session:
                connections.depart(session, batch, now=state.now())
                if failures["left"]:
                    failures["left"] -= 1
                    raise ConnectionError("database gone")
                session.commit()

        await asyncio.to_thread(run)
        if sum(1 for _ in batch):
            written.set()
        return [None] * len(batch)

    departures = GroupCommit(write, name="test departures", retry=True, retry_delay=0.01)
    results = await asyncio.gather(
        *(departures.submit(connections.Departure(m.id, None)) for m, _ in made)
    )
    await departures.close()
    assert results == [None] * len(made)
    events = _events(db)
    assert [e.action for e in events] == ["agent.disconnect"] * len(made)
    assert {e.machine_id for e in events} == {str(m.id) for m, _ in made}
    db.rollback()
    assert all(db.get(Machine, m.id).last_seen_at is not None for m, _ in made)  # type: ignore[union-attr]
    assert verify_chain(db).ok


async def test_a_hello_with_a_new_name_is_audited_and_stored_in_its_batch(state, db) -> None:
    (machine, key), (other, other_key) = _machines(db, 2)
    renamed = MachineInfo(hostname="resepsjon", os="bench", agent_version="2", users=["kari"])
    proved = _attempt(machine.id, key)
    batch = [
        connections.LoginAttempt(machine.id, proved.nonce, proved.signature, renamed, None),
        _attempt(other.id, other_key),
    ]
    with state.db_sessions() as session:
        results = connections.log_in(session, batch, node_id="n1", now=state.now())
        session.commit()
    assert results == [machine.id, other.id]
    db.rollback()
    db.expire_all()
    events = list(
        db.execute(
            select(AuditEvent)
            .where(AuditEvent.machine_id == str(machine.id))
            .order_by(AuditEvent.seq)
        ).scalars()
    )
    # The change under the name it had, the connection under the new one.
    assert [(e.action, e.actor_name) for e in events] == [
        ("machine.info_changed", "agent@lege-pc"),
        ("agent.connect", "agent@resepsjon"),
    ]
    stored = db.get(Machine, machine.id)
    assert stored is not None
    assert (stored.hostname, stored.users, stored.agent_version) == ("resepsjon", "kari", "2")
    assert stored.last_seen_at is not None
    unchanged = db.get(Machine, other.id)
    assert unchanged is not None and unchanged.hostname == "lege-pc"
    assert unchanged.last_seen_at is not None
    assert verify_chain(db).ok


def test_a_login_batch_is_forwarded_event_by_event_after_its_commit(state, db) -> None:
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(30)
    forward.install(
        state.db_sessions, forward.SyslogForwarder(f"127.0.0.1:{receiver.getsockname()[1]}")
    )
    (machine, key), (other, _) = _machines(db, 2)
    forged = _attempt(other.id, Ed25519PrivateKey.generate())
    try:
        with state.db_sessions() as session:
            connections.log_in(session, [_attempt(machine.id, key)], node_id="n1", now=state.now())
            session.rollback()  # rolled back: nothing sent
        with state.db_sessions() as session:
            batch = [_attempt(machine.id, key), forged]
            connections.log_in(session, batch, node_id="n1", now=state.now())
            session.commit()
        sent = [receiver.recv(65535).decode() for _ in range(2)]
    finally:
        receiver.close()
    payloads = [json.loads(m.split(" - audit - ", 1)[1]) for m in sent]
    stored = {e.seq: e for e in _events(db)}
    assert [(p["action"], p["outcome"]) for p in payloads] == [
        ("agent.connect", "success"),
        ("agent.connect", "denied"),
    ]
    assert all(p["hash"] == stored[p["seq"]].hash for p in payloads)


def test_record_all_and_record_in_one_transaction_make_one_chain(state, db) -> None:
    """record_all moves the head as plain columns unless the transaction holds it as an
    object (``record`` ran first): either way the next append continues from it."""
    entry = Entry("agent.connect", Outcome.SUCCESS, Actor.named("agent@lege-pc"))
    with state.db_sessions() as session:
        record_all(session, [entry, entry])  # the head as columns
        record(session, "agent.disconnect", Outcome.INFO, actor=Actor.named("agent@lege-pc"))
        record_all(session, [entry])  # the head loaded as an object by record
        record(session, "agent.disconnect", Outcome.INFO, actor=Actor.named("agent@lege-pc"))
        session.commit()
    events = _events(db)
    assert [e.action for e in events] == [
        "agent.connect",
        "agent.connect",
        "agent.disconnect",
        "agent.connect",
        "agent.disconnect",
    ]
    assert [e.seq for e in events] == list(range(events[0].seq, events[0].seq + 5))
    assert verify_chain(db).ok


def test_names_with_a_copys_special_characters_are_stored_and_hashed_as_sent(state, db) -> None:
    """PostgreSQL's events go in by COPY (audit.log._insert): a tab, a line break, a
    backslash or COPY's end marker in what an agent reports is text like any other."""
    (machine, key), (other, other_key) = _machines(db, 2)
    name = 'lege\tpc\n\\.\r\\N "ø"'
    renamed = MachineInfo(hostname=name, os="bench", agent_version="2", users=["k\tari", "\\N"])
    proved = _attempt(machine.id, key)
    batch = [
        connections.LoginAttempt(machine.id, proved.nonce, proved.signature, renamed, "\\."),
        _attempt(other.id, other_key),
    ]
    with state.db_sessions() as session:
        assert connections.log_in(session, batch, node_id="n\t1", now=state.now()) == [
            machine.id,
            other.id,
        ]
        session.commit()
    db.rollback()
    db.expire_all()
    events = list(
        db.execute(
            select(AuditEvent)
            .where(AuditEvent.machine_id == str(machine.id))
            .order_by(AuditEvent.seq)
        ).scalars()
    )
    assert [(e.action, e.actor_name, e.source_address) for e in events] == [
        ("machine.info_changed", "agent@lege-pc", "\\."),
        ("agent.connect", f"agent@{name}", "\\."),
    ]
    assert json.loads(events[0].details)["after"] == {"hostname": name, "users": ["k\tari", "\\N"]}
    assert json.loads(events[1].details)["node"] == "n\t1"
    stored = db.get(Machine, machine.id)
    assert stored is not None and stored.hostname == name
    assert verify_chain(db).ok


def test_a_batch_whose_events_cannot_be_written_fails_as_a_statement_does(state, db) -> None:
    """The chain's head moved back under the log (what only tampering does): the events'
    insert fails as SQLAlchemy reports a failed statement, on PostgreSQL's COPY too, and
    nothing of the batch is kept."""
    ((machine, key),) = _machines(db, 1)
    with state.db_sessions() as session:
        connections.log_in(session, [_attempt(machine.id, key)], node_id="n1", now=state.now())
        session.commit()
    db.execute(text("UPDATE audit_head SET seq = seq - 1 WHERE id = 1"))
    db.commit()
    with state.db_sessions() as session:
        with pytest.raises(IntegrityError):
            connections.log_in(session, [_attempt(machine.id, key)], node_id="n1", now=state.now())
        session.rollback()
    assert len(_events(db)) == 1
