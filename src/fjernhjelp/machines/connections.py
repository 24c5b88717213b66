"""Agents' control-link logins and departures, many in one transaction.

A node restarting takes back thousands of agents at once; one transaction (and one lock
of the audit chain's head) per login made the chain's head the bottleneck. Here a batch
of logins is one read of the machines and one write: every attempt is still its own
audit event, appended in order, so the chain stays linear; the caller commits once and
answers each agent only after that commit (an agent is never told it is connected by an
event that could still roll back).

Plain rows, not ORM objects: loading a machine with its organisation and group, and
the unit of work's bookkeeping for it and for each event, was most of a login's CPU
(docs/BENCHMARKS.md, "Fleet"). The machines' state is read in the batch's transaction,
not cached: a machine removed on any node is refused from that commit on.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    ARRAY,
    Connection,
    Row,
    Select,
    Table,
    Update,
    Uuid,
    any_,
    bindparam,
    select,
    update,
)
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from fjernhjelp.audit.log import Actor, Entry, Outcome, record_all
from fjernhjelp.control.messages import MachineInfo
from fjernhjelp.machines import registry
from fjernhjelp.machines.models import Machine
from fjernhjelp.refusals import AgentRefused


@dataclass(frozen=True, slots=True)
class LoginAttempt:
    """An agent's hello on the control link: the server's nonce it signed, its proof."""

    machine_id: uuid.UUID
    nonce: bytes
    signature: bytes
    info: MachineInfo
    source_address: str | None


@dataclass(frozen=True, slots=True)
class Departure:
    machine_id: uuid.UUID
    source_address: str | None


_table = cast(Table, Machine.__table__)
# What a login reads and may change of a machine: no relationships, no other columns.
_INFO = ("hostname", "os", "agent_version", "users", "has_display")
_LOGIN_COLUMNS = (
    _table.c.id,
    _table.c.status,
    _table.c.identity_public_key,
    _table.c.organisation_id,
    *(_table.c[name] for name in _INFO),
)
# What a machine reports, in _INFO's order.
Reported = tuple[str, str, str, str, bool]


def _ids_in(dialect: str) -> ColumnElement[bool]:
    """``machines.id`` among the list bound as ``ids``. PostgreSQL takes the list as one
    array: an expanding IN renders its statement again, value by value, at every
    execution (SQLAlchemy's work per value, docs/BENCHMARKS.md "The login's CPU")."""
    if dialect == "postgresql":
        return _table.c.id == any_(bindparam("ids", type_=ARRAY(Uuid())))
    return _table.c.id.in_(bindparam("ids", expanding=True))


@dataclass(frozen=True, slots=True)
class _Statements:
    """A batch's statements, built once per dialect: building one and finding it in the
    compiled cache again cost more than running it."""

    read: Select[Any]
    touch: Update
    store: Update
    departed: Select[Any]

    @classmethod
    def of(cls, dialect: str) -> _Statements:
        return cls(
            read=select(*_LOGIN_COLUMNS).where(_ids_in(dialect)),
            touch=update(_table).where(_ids_in(dialect)).values(last_seen_at=bindparam("now")),
            # A machine whose hello changed what it reports (one row of an executemany).
            store=update(_table)
            .where(_table.c.id == bindparam("b_id"))
            .values(
                last_seen_at=bindparam("b_last_seen_at"),
                **{name: bindparam(f"b_{name}") for name in _INFO},
            ),
            departed=select(_table.c.id, _table.c.hostname, _table.c.organisation_id).where(
                _ids_in(dialect)
            ),
        )


_STATEMENTS = {name: _Statements.of(name) for name in ("postgresql", "sqlite")}


def _statements(conn: Connection) -> _Statements:
    name = conn.dialect.name
    found = _STATEMENTS.get(name)
    if found is None:
        found = _STATEMENTS[name] = _Statements.of(name)
    return found


def _agent(hostname: str, organisation_id: uuid.UUID) -> Actor:
    """The agent as the audit log names it (registry.agent_caller): by the machine's
    host name now."""
    return Actor(None, f"agent@{hostname}", organisation_id)


def _reported(row: Row[Any]) -> Reported:
    return (row.hostname, row.os, row.agent_version, row.users, row.has_display)


def log_in(
    db: Session, attempts: Sequence[LoginAttempt], *, node_id: str, now: datetime
) -> list[uuid.UUID | AgentRefused]:
    """Each attempt's machine id, or its audited refusal, in the attempts' order. The
    caller commits: refusals and connections alike are only kept by that commit.

    The statements run on the session's connection, not through the session: they are
    Core statements on tables, which the session would only pass on (no flush, no
    objects), at a cost per statement that showed in a batch's CPU."""
    conn = db.connection()
    statements = _statements(conn)
    found = conn.execute(statements.read, {"ids": list({a.machine_id for a in attempts})})
    machines: dict[uuid.UUID, Row[Any]] = {row.id: row for row in found}
    # What each proved machine reports after the batch's hellos so far (a machine may
    # say hello twice in one batch: the second is compared with the first).
    reported: dict[uuid.UUID, Reported] = {}
    entries: list[Entry] = []
    results: list[uuid.UUID | AgentRefused] = []
    for attempt in attempts:
        mid = attempt.machine_id
        machine = machines.get(mid)
        if machine is None:
            reason: str | None = "unknown_machine"
        else:
            reason = registry.proof_refusal(
                machine.status,
                machine.identity_public_key,
                machine_id=mid,
                nonce=attempt.nonce,
                signature=attempt.signature,
            )
        if reason is not None:
            hostname = None
            if machine is not None:
                hostname = reported[mid][0] if mid in reported else machine.hostname
            entries.append(
                Entry(
                    "agent.connect",
                    Outcome.DENIED,
                    Actor.named(f"agent@{hostname}" if machine is not None else None),
                    reason=reason,
                    customer_org_id=machine.organisation_id if machine is not None else None,
                    machine_id=str(mid),
                    source_address=attempt.source_address,
                )
            )
            refusal = AgentRefused(reason)
            refusal.recorded = True
            results.append(refusal)
            continue
        assert machine is not None
        # Proved: from here on the agent acts as itself. A new host name in the hello is
        # audited under the name it had; its connection under the new one.
        info = attempt.info
        hostname, _, _, users, _ = reported[mid] if mid in reported else _reported(machine)
        details = registry.info_change(hostname, users, info)
        if details is not None:
            entries.append(
                Entry(
                    "machine.info_changed",
                    Outcome.INFO,
                    _agent(hostname, machine.organisation_id),
                    customer_org_id=machine.organisation_id,
                    machine_id=str(mid),
                    source_address=attempt.source_address,
                    details=details,
                )
            )
        reported[mid] = (
            info.hostname,
            info.os,
            info.agent_version,
            ",".join(info.users),
            info.display,
        )
        entries.append(
            Entry(
                "agent.connect",
                Outcome.SUCCESS,
                _agent(info.hostname, machine.organisation_id),
                customer_org_id=machine.organisation_id,
                machine_id=str(mid),
                source_address=attempt.source_address,
                details={"node": node_id, "agent_version": info.agent_version},
            )
        )
        results.append(mid)
    # Most agents say what they said last time: only their last_seen_at changes.
    changed = {mid for mid, now_says in reported.items() if now_says != _reported(machines[mid])}
    if len(changed) < len(reported):
        same = [mid for mid in reported if mid not in changed]
        conn.execute(statements.touch, {"ids": same, "now": now})
    if changed:
        conn.execute(
            statements.store,
            [
                {
                    "b_id": mid,
                    "b_last_seen_at": now,
                    **{f"b_{n}": value for n, value in zip(_INFO, reported[mid], strict=True)},
                }
                for mid in changed
            ],
        )
    record_all(db, entries)
    return results


def depart(db: Session, departures: Sequence[Departure], *, now: datetime) -> None:
    """The control links ended: each machine last seen now, each end its own event."""
    conn = db.connection()
    statements = _statements(conn)
    found = conn.execute(statements.departed, {"ids": list({d.machine_id for d in departures})})
    machines = {row.id: row for row in found}
    if machines:
        conn.execute(statements.touch, {"ids": list(machines), "now": now})
    record_all(
        db,
        [
            Entry(
                "agent.disconnect",
                Outcome.INFO,
                _agent(machine.hostname, machine.organisation_id),
                customer_org_id=machine.organisation_id,
                machine_id=str(d.machine_id),
                source_address=d.source_address,
            )
            for d in departures
            if (machine := machines.get(d.machine_id)) is not None
        ],
    )
