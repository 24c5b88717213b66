"""Agents' control-link logins and departures, many in one transaction.

A node restarting takes back thousands of agents at once; one transaction (and one lock
of the audit chain's head) per login made the chain's head the bottleneck. Here a batch
of logins is one read of the machines and one write: every attempt is still its own
audit event, appended in order, so the chain stays linear; the caller commits once and
answers each agent only after that commit (an agent is never told it is connected by an
event that could still roll back).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from fjernhjelp.audit.log import appending
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


def _load(db: Session, ids: Sequence[uuid.UUID]) -> None:
    """One query for the batch's machines: ``db.get`` finds them in the identity map."""
    if ids:
        db.execute(select(Machine).where(Machine.id.in_(set(ids)))).scalars().all()


def log_in(
    db: Session, attempts: Sequence[LoginAttempt], *, node_id: str, now: datetime
) -> list[Machine | AgentRefused]:
    """Each attempt's machine, or its audited refusal, in the attempts' order. The caller
    commits: refusals and connections alike are only kept by that commit."""
    _load(db, [a.machine_id for a in attempts])
    with appending(db):
        return [_log_in_one(db, attempt, node_id, now) for attempt in attempts]


def _log_in_one(
    db: Session, attempt: LoginAttempt, node_id: str, now: datetime
) -> Machine | AgentRefused:
    try:
        machine = registry.authenticate(
            db,
            machine_id=attempt.machine_id,
            nonce=attempt.nonce,
            signature=attempt.signature,
            now=now,
            source_address=attempt.source_address,
        )
    except AgentRefused as refusal:
        return refusal
    # Proved: from here on the agent acts as itself. A new host name in the hello is
    # audited under the name it had; its connection under the new one.
    registry.update_info(
        db, registry.agent_caller(machine, now, attempt.source_address), machine, attempt.info
    )
    registry.connected(
        db,
        registry.agent_caller(machine, now, attempt.source_address),
        machine,
        node_id=node_id,
        agent_version=attempt.info.agent_version,
    )
    return machine


def depart(db: Session, departures: Sequence[Departure], *, now: datetime) -> None:
    """The control links ended: each machine last seen now, each end its own event."""
    _load(db, [d.machine_id for d in departures])
    with appending(db):
        for departure in departures:
            machine = db.get(Machine, departure.machine_id)
            if machine is not None:
                registry.disconnected(
                    db, registry.agent_caller(machine, now, departure.source_address), machine
                )
