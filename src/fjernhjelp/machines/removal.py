"""Removing a machine: the customer's answer to a stolen, retired or planted machine.

The machine's status becomes revoked, so its identity key is refused from then on
(``machines.authenticate``; enrolment refuses a key already known). Sessions not yet
opened end here; the caller cuts open ones and the control link on every node once this
has committed (server/runtime.py), so a rolled-back removal cuts nothing.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from fjernhjelp.audit.log import Outcome, record
from fjernhjelp.caller import Caller
from fjernhjelp.machines.models import Machine, MachineStatus
from fjernhjelp.refusals import NotFound
from fjernhjelp.remote.models import RemoteSession, SessionStatus
from fjernhjelp.remote.sessions import LIVE
from fjernhjelp.remote.sessions import end as end_session


@dataclass(frozen=True)
class RemovedMachine:
    machine_id: uuid.UUID
    # Sessions paired at a relay, each with the node holding its relay: the caller cuts
    # them there once this has committed (the relay then records their end with the
    # bytes it counted).
    active_sessions: list[tuple[uuid.UUID, str | None]]


def may_remove(caller: Caller, machine: Machine) -> bool:
    """The customer's own admins; never a vendor, whatever its grant."""
    user = caller.user
    return user.is_admin and user.organisation_id == machine.organisation_id


def remove(db: Session, caller: Caller, machine_id: uuid.UUID) -> RemovedMachine:
    """Only the customer's own admins may; anyone else is refused as if the machine did
    not exist, audited (marked recorded: nothing was changed before the refusal)."""
    user = caller.user
    machine = db.get(Machine, machine_id)
    if machine is None or machine.status != MachineStatus.ACTIVE or not may_remove(caller, machine):
        record(
            db,
            "machine.removed",
            Outcome.DENIED,
            actor=caller.actor,
            reason="no_such_machine",
            # The customer reads attempts on its machines; a stranger's guess at an id
            # names no one.
            customer_org_id=machine.organisation_id
            if machine is not None and user.organisation_id == machine.organisation_id
            else None,
            machine_id=str(machine_id),
            source_address=caller.source_address,
        )
        refusal = NotFound("machine")
        refusal.recorded = True
        raise refusal
    machine.status = MachineStatus.REVOKED
    active: list[tuple[uuid.UUID, str | None]] = []
    live = db.execute(
        select(RemoteSession).where(
            RemoteSession.machine_id == machine.id, RemoteSession.status.in_(LIVE)
        )
    ).scalars()
    for session in list(live):
        if session.status == SessionStatus.ACTIVE:
            active.append((session.id, session.node_id))
        else:
            end_session(db, session.id, now=caller.now, reason="machine_removed")
    record(
        db,
        "machine.removed",
        Outcome.SUCCESS,
        actor=caller.actor,
        customer_org_id=machine.organisation_id,
        machine_id=str(machine.id),
        source_address=caller.source_address,
        details={
            "hostname": machine.hostname,
            "group": str(machine.group_id),
            "package": str(machine.package_id) if machine.package_id else None,
            "before": {"status": MachineStatus.ACTIVE.value},
            "after": {"status": MachineStatus.REVOKED.value},
            "sessions_cut": [str(s) for s, _ in active],
        },
    )
    return RemovedMachine(machine.id, active)
