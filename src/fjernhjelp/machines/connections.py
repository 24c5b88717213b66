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

from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.orm import Session

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

# A machine whose hello changed what it reports (one row of an executemany).
_STORE_INFO = (
    update(_table)
    .where(_table.c.id == bindparam("b_id"))
    .values(
        last_seen_at=bindparam("b_last_seen_at"),
        **{name: bindparam(f"b_{name}") for name in _INFO},
    )
)


def _read(db: Session, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, dict[str, Any]]:
    found = db.execute(select(*_LOGIN_COLUMNS).where(_table.c.id.in_(set(ids))))
    return {row.id: dict(row._mapping) for row in found}


def _touch(db: Session, ids: set[uuid.UUID], now: datetime) -> None:
    if ids:
        db.execute(update(_table).where(_table.c.id.in_(ids)).values(last_seen_at=now))


def _agent(machine: dict[str, Any]) -> Actor:
    """The agent as the audit log names it (registry.agent_caller): by the machine's
    host name now."""
    return Actor(None, f"agent@{machine['hostname']}", machine["organisation_id"])


def log_in(
    db: Session, attempts: Sequence[LoginAttempt], *, node_id: str, now: datetime
) -> list[uuid.UUID | AgentRefused]:
    """Each attempt's machine id, or its audited refusal, in the attempts' order. The
    caller commits: refusals and connections alike are only kept by that commit."""
    machines = _read(db, [a.machine_id for a in attempts])
    before = {mid: dict(row) for mid, row in machines.items()}
    entries: list[Entry] = []
    results: list[uuid.UUID | AgentRefused] = []
    proved: set[uuid.UUID] = set()
    for attempt in attempts:
        machine = machines.get(attempt.machine_id)
        reason = (
            "unknown_machine"
            if machine is None
            else registry.proof_refusal(
                machine["status"],
                machine["identity_public_key"],
                machine_id=attempt.machine_id,
                nonce=attempt.nonce,
                signature=attempt.signature,
            )
        )
        if reason is not None:
            entries.append(
                Entry(
                    "agent.connect",
                    Outcome.DENIED,
                    Actor.named(f"agent@{machine['hostname']}" if machine else None),
                    reason=reason,
                    customer_org_id=machine["organisation_id"] if machine else None,
                    machine_id=str(attempt.machine_id),
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
        details = registry.info_change(machine["hostname"], machine["users"], info)
        if details is not None:
            entries.append(
                Entry(
                    "machine.info_changed",
                    Outcome.INFO,
                    _agent(machine),
                    customer_org_id=machine["organisation_id"],
                    machine_id=str(attempt.machine_id),
                    source_address=attempt.source_address,
                    details=details,
                )
            )
        machine.update(
            hostname=info.hostname,
            os=info.os,
            agent_version=info.agent_version,
            users=",".join(info.users),
            has_display=info.display,
        )
        entries.append(
            Entry(
                "agent.connect",
                Outcome.SUCCESS,
                _agent(machine),
                customer_org_id=machine["organisation_id"],
                machine_id=str(attempt.machine_id),
                source_address=attempt.source_address,
                details={"node": node_id, "agent_version": info.agent_version},
            )
        )
        proved.add(attempt.machine_id)
        results.append(attempt.machine_id)
    # Most agents say what they said last time: only their last_seen_at changes.
    changed = [mid for mid in proved if any(machines[mid][n] != before[mid][n] for n in _INFO)]
    _touch(db, proved.difference(changed), now)
    if changed:
        db.execute(
            _STORE_INFO,
            [
                {"b_id": mid, "b_last_seen_at": now, **{f"b_{n}": machines[mid][n] for n in _INFO}}
                for mid in changed
            ],
        )
    record_all(db, entries)
    return results


def depart(db: Session, departures: Sequence[Departure], *, now: datetime) -> None:
    """The control links ended: each machine last seen now, each end its own event."""
    ids = {d.machine_id for d in departures}
    found = db.execute(
        select(_table.c.id, _table.c.hostname, _table.c.organisation_id).where(_table.c.id.in_(ids))
    )
    machines = {row.id: dict(row._mapping) for row in found}
    _touch(db, set(machines), now)
    record_all(
        db,
        [
            Entry(
                "agent.disconnect",
                Outcome.INFO,
                _agent(machines[d.machine_id]),
                customer_org_id=machines[d.machine_id]["organisation_id"],
                machine_id=str(d.machine_id),
                source_address=d.source_address,
            )
            for d in departures
            if d.machine_id in machines
        ],
    )
