"""Machines: proving an agent's identity on the control link, recording what it reports,
and which machines a technician or an admin may see."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import ColumnElement, Select, or_, select
from sqlalchemy.orm import Session

from fjernhjelp.audit.log import Outcome, record
from fjernhjelp.auth.models import User
from fjernhjelp.caller import Caller
from fjernhjelp.control import statements
from fjernhjelp.control.messages import MachineInfo
from fjernhjelp.machines.models import Machine, MachineStatus
from fjernhjelp.portal.models.agreement import Agreement, AgreementStatus
from fjernhjelp.portal.models.grant import Grant, GrantStatus
from fjernhjelp.refusals import NotFound


def proof_refusal(
    status: str,
    identity_public_key: bytes,
    *,
    machine_id: uuid.UUID,
    nonce: bytes,
    signature: bytes,
) -> str | None:
    """Why a known machine's login is refused, or None when its identity key signed our
    fresh nonce and the machine is active (machines/connections.py audits the answer).
    The status is read in the login's own transaction, never from a cache: a machine
    removed on any node is refused on every node from that commit on."""
    if status != MachineStatus.ACTIVE:
        return "machine_revoked"
    try:
        Ed25519PublicKey.from_public_bytes(identity_public_key).verify(
            signature, statements.agent_proof_statement(nonce, machine_id)
        )
    except InvalidSignature:
        return "bad_signature"
    return None


def info_change(hostname: str, users: str, info: MachineInfo) -> dict[str, Any] | None:
    """The audit details of a report that changes the host name or the users (before and
    after), or None when it changes neither."""
    if (hostname, users) == (info.hostname, ",".join(info.users)):
        return None
    return {
        "before": {"hostname": hostname, "users": [u for u in users.split(",") if u]},
        "after": {"hostname": info.hostname, "users": list(info.users)},
    }


def update_info(db: Session, caller: Caller, machine: Machine, info: MachineInfo) -> None:
    """Store what the agent (``caller``, speaking for ``machine``) reports. A new host
    name or new users are audited with before and after: the name is what technicians
    choose machines by, and the agent alone decides it."""
    details = info_change(machine.hostname, machine.users, info)
    if details is not None:
        record(
            db,
            "machine.info_changed",
            Outcome.INFO,
            actor=caller.actor,
            customer_org_id=machine.organisation_id,
            machine_id=str(machine.id),
            source_address=caller.source_address,
            details=details,
        )
    machine.hostname = info.hostname
    machine.os = info.os
    machine.agent_version = info.agent_version
    machine.users = ",".join(info.users)
    machine.has_display = info.display
    machine.last_seen_at = caller.now


def agent_caller(machine: Machine, now: datetime, source_address: str | None) -> Caller:
    """The agent speaking for ``machine`` over its control link, named by the host name
    the machine has now (an audit line names the agent as it was when it acted)."""
    return Caller.agent(machine.id, machine.hostname, machine.organisation_id, now, source_address)


def _live_grant_groups(user: User, now: datetime) -> Select[uuid.UUID]:
    """Groups the user's vendor holds a grant on that has not ended (status, its own
    expiry and its agreement's, checked by time too: the sweep may not have run yet)
    and that names the user or names nobody."""
    named = Grant.technicians.any(User.id == user.id)
    return (
        select(Grant.group_id)
        .join(Agreement, Agreement.id == Grant.agreement_id)
        .where(
            Grant.vendor_org_id == user.organisation_id,
            Grant.status == GrantStatus.ACTIVE,
            or_(Grant.expires_at.is_(None), Grant.expires_at > now),
            Agreement.status == AgreementStatus.ACTIVE,
            Agreement.valid_from <= now,
            or_(Agreement.valid_until.is_(None), Agreement.valid_until > now),
            or_(~Grant.technicians.any(), named),
        )
    )


def _visible(user: User, now: datetime, *, ended_grants: bool = False) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if user.is_admin or user.is_operator:
        conditions.append(Machine.organisation_id == user.organisation_id)
    if user.is_technician:
        if ended_grants:
            granted = select(Grant.group_id).where(Grant.vendor_org_id == user.organisation_id)
        else:
            granted = _live_grant_groups(user, now)
        conditions.append(Machine.group_id.in_(granted))
    return conditions


def visible_to(db: Session, caller: Caller) -> list[Machine]:
    """Active machines the caller may see: its own organisation's (admins), and those in
    groups its organisation holds a live grant on that names the caller or nobody
    (technicians). Whether a connection is allowed *now* is decided per request by
    portal.access.decide."""
    conditions = _visible(caller.user, caller.now)
    if not conditions:
        return []
    return list(
        db.execute(
            select(Machine)
            .where(Machine.status == MachineStatus.ACTIVE, or_(*conditions))
            .order_by(Machine.hostname)
        ).scalars()
    )


def get_visible(
    db: Session, caller: Caller, machine_id: uuid.UUID, *, ended_grants: bool = False
) -> Machine:
    """The machine, if the caller may see it; otherwise NotFound, exactly as for an id
    that does not exist. ``ended_grants`` also finds machines of groups the caller's
    organisation *had* (or has, without naming the caller) a grant on, so a connection
    attempt is refused with the real reason (grant revoked, expired, technician not
    named) rather than "no such machine"."""
    conditions = _visible(caller.user, caller.now, ended_grants=ended_grants)
    machine = None
    if conditions:
        machine = db.execute(
            select(Machine).where(
                Machine.id == machine_id, Machine.status == MachineStatus.ACTIVE, or_(*conditions)
            )
        ).scalar_one_or_none()
    if machine is None:
        raise NotFound("machine")
    return machine
