"""Remote sessions: asking for one (authorise, then ticket), and their end.

The server decides and signs; it never sees inside a session. What it records: who asked
for which machine, the decision and why, when both ends met at the relay, when and why it
ended, and how many bytes went each way.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import ColumnElement, and_, or_, select
from sqlalchemy.orm import Session

from fjernhjelp.audit.log import Actor, Outcome, record
from fjernhjelp.auth.tokens import new_token, token_hash
from fjernhjelp.caller import Caller
from fjernhjelp.machines.models import Machine
from fjernhjelp.machines.registry import get_visible
from fjernhjelp.portal import access
from fjernhjelp.portal.revocations import LiveSession
from fjernhjelp.refusals import NotFound, RelayRefused, SessionRefused
from fjernhjelp.remote.models import RemoteSession, SessionKind, SessionStatus
from fjernhjelp.tunnel.tickets import Party, Permission, Ticket, issue_ticket

# How long a ticket may be used to *open* the tunnel; a running session is not bound
# by it (revocation and the end user end sessions).
TICKET_LIFETIME = timedelta(minutes=2)
LIVE = (SessionStatus.REQUESTED, SessionStatus.ACTIVE)


@dataclass(frozen=True)
class IssuedSession:
    session: RemoteSession
    ticket: str
    technician_token: str
    agent_token: str
    agent_identity_key: bytes
    expires_at: datetime


def _recorded(refusal: SessionRefused) -> SessionRefused:
    # Raised after its audit events (the decision, the refusal) and before the session
    # row is added: the events are all the request keeps.
    refusal.recorded = True
    return refusal


def request(
    db: Session,
    caller: Caller,
    *,
    machine_id: uuid.UUID,
    technician_key: bytes,
    signing_key: Ed25519PrivateKey,
    node_id: str,
    machine_online: bool = True,
) -> IssuedSession:
    """Authorise the technician (``caller``) and issue a ticket, or raise SessionRefused;
    audited either way (a refusal marked recorded)."""
    technician, now = caller.user, caller.now
    if len(technician_key) != 32:
        raise SessionRefused("bad_technician_key")
    try:
        machine = get_visible(db, caller, machine_id, ended_grants=True)
    except NotFound:
        # Only "not there, or not yours to see" is that answer; the id is already a UUID
        # (the API's model parsed it). Anything else, a database failure above all, is
        # the server's fault and propagates: reporting it as a missing machine would
        # audit a denial that never happened and hide the fault.
        record(
            db,
            "access.requested",
            Outcome.DENIED,
            actor=caller.actor,
            reason="no_such_machine",
            machine_id=str(machine_id),
            source_address=caller.source_address,
            factor=caller.factor,
        )
        raise _recorded(SessionRefused("no_such_machine")) from None
    decision = access.decide(db, technician, machine.group_id, now)
    access.audit_decision(
        db,
        decision,
        technician,
        source_address=caller.source_address,
        machine_id=str(machine.id),
        factor=caller.factor,
    )
    if not isinstance(decision, access.AccessAllowed):
        raise _recorded(SessionRefused(decision.reason.value))
    if not machine_online:
        record(
            db,
            "session.refused",
            Outcome.DENIED,
            actor=caller.actor,
            reason="machine_offline",
            customer_org_id=decision.customer_org_id,
            machine_id=str(machine.id),
            source_address=caller.source_address,
            factor=caller.factor,
        )
        raise _recorded(SessionRefused("machine_offline"))

    expires_at = now + TICKET_LIFETIME
    if decision.valid_until is not None:
        expires_at = min(expires_at, decision.valid_until)
    technician_token, agent_token = new_token(), new_token()
    session = RemoteSession(
        machine=machine,
        technician=technician,
        vendor_org_id=decision.vendor_org_id,
        customer_org_id=decision.customer_org_id,
        group_id=decision.group_id,
        grant_id=decision.grant_id,
        permissions=",".join(sorted(p.value for p in decision.permissions)),
        consent_required=decision.consent_required,
        status=SessionStatus.REQUESTED,
        requested_at=now,
        technician_token_hash=token_hash(technician_token),
        agent_token_hash=token_hash(agent_token),
        node_id=node_id,
    )
    db.add(session)
    db.flush()
    vendor = technician.organisation
    ticket = Ticket(
        session_id=str(session.id),
        machine_id=str(machine.id),
        technician=Party(str(technician.id), technician.display_name),
        vendor_org=Party(str(vendor.id), vendor.name),
        customer_org=Party(str(machine.organisation_id), machine.organisation.name),
        permissions=frozenset(Permission(p.value) for p in decision.permissions),
        consent_required=decision.consent_required,
        issued_at=int(now.timestamp()),
        expires_at=int(expires_at.timestamp()),
        technician_key_sha256=hashlib.sha256(technician_key).digest(),
        grant_id=str(decision.grant_id),
        agreement_ref=decision.agreement_reference[:200],
    )
    record(
        db,
        "session.ticket_issued",
        Outcome.SUCCESS,
        actor=caller.actor,
        customer_org_id=decision.customer_org_id,
        machine_id=str(machine.id),
        source_address=caller.source_address,
        factor=caller.factor,
        details={
            "session": str(session.id),
            "permissions": session.permission_list,
            "consent_required": session.consent_required,
            "expires_at": expires_at.isoformat(),
        },
    )
    return IssuedSession(
        session=session,
        ticket=issue_ticket(signing_key, ticket),
        technician_token=technician_token,
        agent_token=agent_token,
        agent_identity_key=machine.identity_public_key,
        expires_at=expires_at,
    )


def check_relay_token(
    db: Session, *, session_id: uuid.UUID, role: str, token: str, now: datetime
) -> RemoteSession:
    """The live session this relay token opens, or RelayRefused."""
    session = db.get(RemoteSession, session_id)
    if session is None or session.status not in LIVE:
        raise RelayRefused("no_such_session")
    expected = session.technician_token_hash if role == "technician" else session.agent_token_hash
    # No hash: a Support session whose tunnel has not been asked for yet.
    if expected is None or not hmac.compare_digest(expected, token_hash(token)):
        raise RelayRefused("bad_relay_token")
    # A Support session's tunnel is asked for long after its row was made (the code).
    asked = session.tunnel_requested_at or session.requested_at
    if session.status == SessionStatus.REQUESTED and now > asked + TICKET_LIFETIME:
        raise RelayRefused("session_request_expired")
    return session


def join_relay(
    db: Session,
    *,
    session_id: uuid.UUID,
    role: str,
    token: str,
    now: datetime,
    source_address: str | None,
) -> RemoteSession:
    """One end joining the relay with its token (``check_relay_token``), audited either
    way under the end's role (a refusal marked recorded: it changed nothing). No Caller:
    the socket is anonymous until the token says whose it is."""
    actor = Actor.named(role)
    try:
        session = check_relay_token(db, session_id=session_id, role=role, token=token, now=now)
    except RelayRefused as exc:
        record(
            db,
            "relay.join",
            Outcome.DENIED,
            actor=actor,
            reason=exc.reason,
            source_address=source_address,
            details={"session": str(session_id)},
        )
        exc.recorded = True
        raise
    record(
        db,
        "relay.join",
        Outcome.SUCCESS,
        actor=actor,
        customer_org_id=session.customer_org_id,
        machine_id=_machine(session),
        source_address=source_address,
        details={"session": str(session_id), "role": role},
    )
    return session


def _machine(session: RemoteSession) -> str | None:
    # A Support session reaches a person, not a machine.
    return str(session.machine_id) if session.machine_id is not None else None


def mark_active(db: Session, session_id: uuid.UUID, now: datetime) -> None:
    # Locked: a short session can end (its relay on another thread, or a cut) while this
    # waits its turn; read unlocked, the row's ended status would be overwritten with
    # "active" and the session left open for ever.
    session = db.get(RemoteSession, session_id, with_for_update={"of": RemoteSession})
    if session is not None and session.status == SessionStatus.REQUESTED:
        session.status = SessionStatus.ACTIVE
        session.started_at = now
        record(
            db,
            "session.tunnel_opened",
            Outcome.SUCCESS,
            actor=Actor.of(session.technician),
            customer_org_id=session.customer_org_id,
            machine_id=_machine(session),
            details={"session": str(session.id)},
        )


def end(
    db: Session,
    session_id: uuid.UUID,
    *,
    now: datetime,
    reason: str,
    bytes_from_technician: int = 0,
    bytes_from_agent: int = 0,
    late: bool = False,
) -> RemoteSession | None:
    """End the session at ``now`` with ``session.ended``; None if it had ended already.
    ``late``: it ended at ``now`` but is recorded only after the database came back
    (server/late_ends.py); the event says so and when it ended."""
    session = db.get(RemoteSession, session_id)
    if session is None or session.status == SessionStatus.ENDED:
        return None
    session.status = SessionStatus.ENDED
    session.ended_at = now
    session.end_reason = reason[:120]
    session.bytes_from_technician = bytes_from_technician
    session.bytes_from_agent = bytes_from_agent
    record(
        db,
        "session.ended",
        Outcome.INFO,
        actor=Actor.of(session.technician),
        reason=reason[:120],
        customer_org_id=session.customer_org_id,
        machine_id=_machine(session),
        details={
            "session": str(session.id),
            **({"support": True} if session.is_support else {}),
            "bytes_from_technician": bytes_from_technician,
            "bytes_from_agent": bytes_from_agent,
            "duration_seconds": int(
                (now - (session.started_at or session.requested_at)).total_seconds()
            ),
            **({"ended_at": now.isoformat(), "recorded_late": True} if late else {}),
        },
    )
    return session


def live_sessions(db: Session, *, support_before_tunnel: bool = False) -> list[RemoteSession]:
    """Sessions asked for or running; with ``support_before_tunnel`` also the Support
    sessions whose tunnel is not asked for yet: those whose code waits for the end user,
    and those the end user has joined (their client waits on the control link)."""
    live: ColumnElement[bool] = RemoteSession.status.in_(LIVE)
    if support_before_tunnel:
        live = or_(
            live,
            and_(
                RemoteSession.kind == SessionKind.SUPPORT,
                RemoteSession.status.in_((SessionStatus.WAITING, SessionStatus.JOINED)),
            ),
        )
    return list(db.execute(select(RemoteSession).where(live)).scalars())


def as_live(session: RemoteSession) -> LiveSession:
    return LiveSession(
        grant_id=session.grant_id or uuid.UUID(int=0),
        group_id=session.group_id or uuid.UUID(int=0),
        customer_org_id=session.customer_org_id,
        vendor_org_id=session.vendor_org_id,
        technician_id=session.technician_id,
        support=session.is_support,
        agreement_id=session.agreement_id,
    )


def end_orphans(db: Session, *, node_id: str, now: datetime) -> int:
    """At start-up: sessions this node was relaying when it stopped are over."""
    count = 0
    for session in live_sessions(db):
        if session.node_id == node_id:
            end(db, session.id, now=now, reason="server_restart")
            count += 1
    return count


def nodes_with_live_sessions(db: Session) -> set[str]:
    """The nodes recorded for sessions asked for or running (each relays its own)."""
    rows = db.execute(
        select(RemoteSession.node_id).where(RemoteSession.status.in_(LIVE)).distinct()
    ).scalars()
    return {node for node in rows if node}


def end_sessions_of_lost_nodes(
    db: Session, node_ids: Iterable[str], *, now: datetime
) -> list[RemoteSession]:
    """Another node died and will not say so (killed, its machine gone): the sessions it
    was relaying are over, recorded by whichever survivor noticed first. The rows are
    locked first so two survivors sweeping at once record each end once."""
    nodes = sorted(set(node_ids))
    if not nodes:
        return []
    rows = db.execute(
        select(RemoteSession)
        .where(RemoteSession.status.in_(LIVE), RemoteSession.node_id.in_(nodes))
        .order_by(RemoteSession.id)
        .with_for_update(of=RemoteSession)
    ).scalars()
    ended = []
    for session in list(rows):
        if end(db, session.id, now=now, reason="node_lost") is not None:
            ended.append(session)
    return ended


def record_agent_event(
    db: Session,
    caller: Caller,
    machine: Machine,
    *,
    session_id: uuid.UUID,
    action: str,
    reason: str | None,
    details: dict[str, object],
) -> bool:
    """An event the agent (``caller``, speaking for ``machine``) reports from inside a
    session (consent, streams, files). Only for sessions of this very machine: an agent
    cannot write into another's log."""
    session = db.get(RemoteSession, session_id)
    if session is None or session.machine_id != machine.id:
        return False
    outcome = {
        "consent.given": Outcome.SUCCESS,
        "consent.denied": Outcome.DENIED,
        "consent.timed_out": Outcome.DENIED,
        "consent.no_display": Outcome.DENIED,
        "session.refused": Outcome.DENIED,
        "stream.refused": Outcome.DENIED,
        "input.held_back": Outcome.DENIED,
    }.get(action, Outcome.INFO)
    record(
        db,
        action,
        outcome,
        actor=caller.actor,
        reason=reason,
        customer_org_id=session.customer_org_id,
        machine_id=str(machine.id),
        source_address=caller.source_address,
        details={"session": str(session.id), "technician": session.technician.username, **details},
    )
    return True


def record_dial_refusal(
    db: Session,
    caller: Caller,
    machine: Machine,
    *,
    session_id: uuid.UUID,
    reason: str | None,
    details: dict[str, object],
) -> bool:
    """The agent would not dial the relay URL it was sent (control.dial). Always audited,
    under the agent's own organisation: a refusal of a Dial that names no session of this
    machine is what a forged control message looks like. True if the session is its own."""
    session = db.get(RemoteSession, session_id)
    own = session is not None and session.machine_id == machine.id
    extra: dict[str, object] = {"session": str(session_id), "known_session": own}
    if own:
        assert session is not None
        extra["technician"] = session.technician.username
    record(
        db,
        "dial.refused",
        Outcome.DENIED,
        actor=caller.actor,
        reason=reason,
        customer_org_id=session.customer_org_id if own and session else machine.organisation_id,
        machine_id=str(machine.id),
        source_address=caller.source_address,
        details={**extra, **{k: str(v)[:120] for k, v in list(details.items())[:4]}},
    )
    return own
