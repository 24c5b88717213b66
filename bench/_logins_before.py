"""The login batch as main had it at 9203c8a (machines/connections.py ``log_in`` and
audit/log.py ``record_all``, the path a batch takes: the chain's head as plain columns),
kept unchanged so bench/agent_logins.py measures the new path against it in the same
process. Not used by the server."""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, insert, select, update
from sqlalchemy.orm import Session

from fjernhjelp import metrics
from fjernhjelp.audit.chain import _canonical_json, canonical_details
from fjernhjelp.audit.log import Actor, Entry, Outcome, _check_details
from fjernhjelp.audit.models import AuditEvent, AuditHead
from fjernhjelp.db.base import utcnow
from fjernhjelp.machines import registry
from fjernhjelp.machines.models import Machine
from fjernhjelp.refusals import AgentRefused

_table = cast(Table, Machine.__table__)
_INFO = ("hostname", "os", "agent_version", "users", "has_display")
_LOGIN_COLUMNS = (
    _table.c.id,
    _table.c.status,
    _table.c.identity_public_key,
    _table.c.organisation_id,
    *(_table.c[name] for name in _INFO),
)
_STORE_INFO = (
    update(_table)
    .where(_table.c.id == bindparam("b_id"))
    .values(
        last_seen_at=bindparam("b_last_seen_at"),
        **{name: bindparam(f"b_{name}") for name in _INFO},
    )
)
_events = cast(Table, AuditEvent.__table__)
_head = cast(Table, AuditHead.__table__)
_LOCK_HEAD = select(_head.c.seq, _head.c.hash).where(_head.c.id == 1).with_for_update()
_MOVE_HEAD = (
    update(_head).where(_head.c.id == 1).values(seq=bindparam("b_seq"), hash=bindparam("b_hash"))
)


def event_hash(prev_hash: str, fields: dict[str, Any]) -> str:
    """main's event_hash: chain._canonical_json is what canonical_event was."""
    return hashlib.sha256(prev_hash.encode("ascii") + _canonical_json(fields)).hexdigest()


def _agent(machine: dict[str, Any]) -> Actor:
    return Actor(None, f"agent@{machine['hostname']}", machine["organisation_id"])


def record_all(db: Session, entries: Sequence[Entry]) -> None:
    if not entries:
        return
    started = time.perf_counter()
    seq, prev_hash = db.execute(_LOCK_HEAD).one()
    rows: list[dict[str, Any]] = []
    for entry in entries:
        if entry.details:
            _check_details(entry.details)
        seq += 1
        row: dict[str, Any] = {
            "seq": seq,
            "id": uuid.uuid4(),
            "occurred_at": utcnow(),
            "action": entry.action,
            "outcome": str(entry.outcome),
            "reason": entry.reason,
            "actor_user_id": entry.actor.user_id,
            "actor_name": entry.actor.name,
            "actor_org_id": entry.actor.org_id,
            "customer_org_id": entry.customer_org_id,
            "vendor_org_id": None,
            "machine_id": entry.machine_id,
            "source_address": entry.source_address,
            "factor": None,
            "details": canonical_details(entry.details),
            "prev_hash": prev_hash,
        }
        row["hash"] = prev_hash = event_hash(prev_hash, row)
        rows.append(row)
    db.execute(insert(_events), rows)
    db.execute(_MOVE_HEAD, {"b_seq": seq, "b_hash": prev_hash})
    elapsed = time.perf_counter() - started
    for entry in entries:
        metrics.audited(entry.action, str(entry.outcome), entry.reason, elapsed)


def log_in(
    db: Session, attempts: Sequence[Any], *, node_id: str, now: datetime
) -> list[uuid.UUID | AgentRefused]:
    found = db.execute(
        select(*_LOGIN_COLUMNS).where(_table.c.id.in_({a.machine_id for a in attempts}))
    )
    machines = {row.id: dict(row._mapping) for row in found}
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
    changed = [mid for mid in proved if any(machines[mid][n] != before[mid][n] for n in _INFO)]
    unchanged = proved.difference(changed)
    if unchanged:
        db.execute(update(_table).where(_table.c.id.in_(unchanged)).values(last_seen_at=now))
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
