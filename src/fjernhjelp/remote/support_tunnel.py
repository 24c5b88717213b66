"""A Support session's tunnel: the one-time client's control-link login with its in-memory
key, the technician's ticket for the session, and what the client reports for the audit
log. The ticket names ``support:<id>`` where an Access ticket names a machine, so neither
kind can open the other's tunnel."""

from __future__ import annotations

import hashlib
import hmac
import uuid
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy.orm import Session

from fjernhjelp.audit.log import Outcome, record
from fjernhjelp.auth.tokens import new_token, token_hash
from fjernhjelp.caller import Caller
from fjernhjelp.control import statements
from fjernhjelp.portal.models import Organisation
from fjernhjelp.portal.support import SupportAllowed, decide_support
from fjernhjelp.portal.trail import audits_refusals
from fjernhjelp.refusals import AgentRefused, SessionRefused
from fjernhjelp.remote.models import RemoteSession, SessionStatus
from fjernhjelp.remote.sessions import IssuedSession
from fjernhjelp.remote.support import END_USER, own
from fjernhjelp.tunnel.tickets import Party, Permission, Ticket, issue_ticket

if TYPE_CHECKING:
    pass

# ---- the one-time client and the tunnel ----------------------------------------------------

# What a Support ticket allows: the end user consents to it every time. The shell is in
# the ticket but the client drops it unless the end user ticks it in the consent dialog
# (agent.remote_session enforces that); never "terminal_admin": the client runs as the
# end user, and a shell "as the service" would be the same account anyway.
SUPPORT_PERMISSIONS = frozenset(
    {
        Permission.VIEW,
        Permission.CONTROL,
        Permission.CHAT,
        Permission.FILES,
        Permission.TERMINAL,
    }
)
# The client's own end of a Support ticket: what the ticket names instead of a machine.
SUBJECT_PREFIX = "support:"


def ticket_subject(session_id: uuid.UUID) -> str:
    """What a Support ticket names where an Access ticket names its machine: an Access
    ticket can never open a Support client's tunnel, nor the other way round."""
    return f"{SUBJECT_PREFIX}{session_id}"


class ClientLoginRefused(AgentRefused):
    """A Support client's control-link login refused (its reason is audited)."""


def client_login(
    db: Session,
    *,
    session_id: uuid.UUID,
    token: str,
    public_key: bytes,
    nonce: bytes,
    signature: bytes,
    now: datetime,
    source_address: str | None,
    client_version: str,
    way: str = "client",
) -> RemoteSession:
    """The end user's one-time client logs in on the control link: its end-user token
    and its in-memory key, which signed the server's fresh nonce. The first login
    records the key (``support.client_started``); the token opens the link from then on
    only for that key, and only while the session lives. Refusals are audited under the
    end user and raised marked recorded."""
    row = db.get(RemoteSession, session_id)
    reason: str | None = None
    if row is None or not row.is_support or row.end_user_token_hash is None:
        reason = "unknown_session"
    elif not hmac.compare_digest(row.end_user_token_hash, token_hash(token)):
        reason = "bad_token"
    elif row.status == SessionStatus.ENDED:
        reason = "session_ended"
    elif len(public_key) != 32:
        reason = "bad_key"
    elif row.client_public_key is not None and not hmac.compare_digest(
        row.client_public_key, public_key
    ):
        # The token is spent on the first key: whoever else holds it gets nothing.
        reason = "client_key_mismatch"
    else:
        try:
            Ed25519PublicKey.from_public_bytes(public_key).verify(
                signature,
                statements.support_client_proof_statement(nonce, session_id, public_key),
            )
        except (InvalidSignature, ValueError):
            reason = "bad_signature"
    known = row is not None and row.is_support and reason not in ("unknown_session", "bad_token")
    if reason is not None:
        record(
            db,
            "support.client_login",
            Outcome.DENIED,
            actor=END_USER,
            reason=reason,
            customer_org_id=row.customer_org_id if known and row is not None else None,
            source_address=source_address,
            details={"session": str(session_id)},
        )
        refusal = ClientLoginRefused(reason)
        refusal.recorded = True
        raise refusal
    assert row is not None
    first = row.client_public_key is None
    if first:
        row.client_public_key = public_key
        row.client_way = way
        db.flush()
    record(
        db,
        "support.client_started" if first else "support.client_reconnected",
        Outcome.SUCCESS,
        actor=END_USER,
        customer_org_id=row.customer_org_id,
        source_address=source_address,
        details={
            "session": str(row.id),
            "technician": row.technician.username,
            "client_version": client_version[:32],
            "way": way,
            "client_key_sha256": hashlib.sha256(public_key).hexdigest(),
        },
    )
    return row


@audits_refusals("support.tunnel_requested")
def request_tunnel(
    db: Session,
    caller: Caller,
    support_id: uuid.UUID,
    *,
    technician_key: bytes,
    signing_key: Ed25519PrivateKey,
    node_id: str,
    client_online: bool,
    ticket_lifetime: timedelta,
) -> IssuedSession:
    """The technician who made the Support session asks for its tunnel, once the end
    user's client has logged in: decide_support again (the agreement, the accounts and
    the terms may have changed since the code), then a ticket for the client's subject
    with the fixed Support permissions, consent always required. Refusals are audited
    as ``support.tunnel_requested`` denied (audits_refusals)."""
    if len(technician_key) != 32:
        raise SessionRefused("bad_technician_key")
    row = own(db, caller, support_id)
    technician, now = caller.user, caller.now
    if row.status != SessionStatus.JOINED or row.client_public_key is None:
        # Waiting (nobody joined), a tunnel already asked for, or ended: one tunnel per
        # Support session (docs/tunnel.md §18.2: every tunnel is a new SAS to compare).
        raise SessionRefused("support_not_ready")
    if not client_online:
        raise SessionRefused("client_offline")
    decision = decide_support(db, technician, row.customer_org_id, now)
    if not isinstance(decision, SupportAllowed):
        raise SessionRefused(decision.reason.value)
    expires_at = now + ticket_lifetime
    if decision.valid_until is not None:
        expires_at = min(expires_at, decision.valid_until)
    technician_token, agent_token = new_token(), new_token()
    row.status = SessionStatus.REQUESTED
    row.tunnel_requested_at = now
    row.permissions = ",".join(sorted(p.value for p in SUPPORT_PERMISSIONS))
    row.technician_token_hash = token_hash(technician_token)
    row.agent_token_hash = token_hash(agent_token)
    row.node_id = node_id
    db.flush()
    vendor = db.get(Organisation, row.vendor_org_id)
    customer = db.get(Organisation, row.customer_org_id)
    ticket = Ticket(
        session_id=str(row.id),
        machine_id=ticket_subject(row.id),
        technician=Party(str(technician.id), technician.display_name),
        vendor_org=Party(str(row.vendor_org_id), vendor.name if vendor else "?"),
        customer_org=Party(str(row.customer_org_id), customer.name if customer else "?"),
        permissions=SUPPORT_PERMISSIONS,
        consent_required=True,
        issued_at=int(now.timestamp()),
        expires_at=int(expires_at.timestamp()),
        technician_key_sha256=hashlib.sha256(technician_key).digest(),
        grant_id="",
        agreement_ref=decision.agreement_reference[:200],
    )
    record(
        db,
        "support.tunnel_requested",
        Outcome.SUCCESS,
        actor=caller.actor,
        customer_org_id=row.customer_org_id,
        source_address=caller.source_address,
        factor=caller.factor,
        details={
            "session": str(row.id),
            "permissions": row.permission_list,
            "expires_at": expires_at.isoformat(),
        },
    )
    return IssuedSession(
        session=row,
        ticket=issue_ticket(signing_key, ticket),
        technician_token=technician_token,
        agent_token=agent_token,
        agent_identity_key=row.client_public_key,
        expires_at=expires_at,
    )


def record_client_event(
    db: Session,
    *,
    session_id: uuid.UUID,
    action: str,
    reason: str | None,
    details: dict[str, object],
    source_address: str | None,
) -> bool:
    """An event the Support client (logged in for ``session_id``) reports from inside its
    session: consent, the SAS, streams, its end. Under the end user, marked support."""
    row = db.get(RemoteSession, session_id)
    if row is None or not row.is_support:
        return False
    outcome = _CLIENT_OUTCOMES.get(action, Outcome.INFO)
    record(
        db,
        action,
        outcome,
        actor=END_USER,
        reason=reason,
        customer_org_id=row.customer_org_id,
        source_address=source_address,
        details={
            "session": str(row.id),
            "support": True,
            "technician": row.technician.username,
            **details,
        },
    )
    return True


_CLIENT_OUTCOMES = {
    "consent.given": Outcome.SUCCESS,
    "consent.denied": Outcome.DENIED,
    "consent.timed_out": Outcome.DENIED,
    "consent.no_display": Outcome.DENIED,
    "session.refused": Outcome.DENIED,
    "stream.refused": Outcome.DENIED,
    "input.held_back": Outcome.DENIED,
    "sas.failed": Outcome.FAILURE,
    "dial.refused": Outcome.DENIED,
}
