"""The exact bytes each side signs, with a distinct prefix per purpose.

Domain separation: a signature made for one purpose can never be replayed as another
(an enrolment signature is not a control-link login, a server challenge is not a ticket).
"""

from __future__ import annotations

import uuid

ENROL = b"fjernhjelp-enrol-v1\x00"
ENROLLED = b"fjernhjelp-enrolled-v1\x00"
SERVER_CHALLENGE = b"fjernhjelp-control-server-v1\x00"
AGENT_PROOF = b"fjernhjelp-control-agent-v1\x00"
INSTALLER = b"fjernhjelp-installer-v1\x00"
RELAY = b"fjernhjelp-relay-url-v1\x00"
SUPPORT_CLIENT_PROOF = b"fjernhjelp-control-support-client-v1\x00"

NONCE_BYTES = 32


def enrol_statement(token: str, agent_public_key: bytes) -> bytes:
    """Signed by the agent's new identity key: proves it holds the key it enrols."""
    return ENROL + len(token).to_bytes(2, "big") + token.encode() + agent_public_key


def enrolled_statement(machine_id: uuid.UUID, agent_public_key: bytes) -> bytes:
    """Signed by the server: the agent checks it with the pinned key before trusting the id."""
    return ENROLLED + machine_id.bytes + agent_public_key


def server_challenge_statement(nonce: bytes) -> bytes:
    return SERVER_CHALLENGE + nonce


def agent_proof_statement(nonce: bytes, machine_id: uuid.UUID) -> bytes:
    return AGENT_PROOF + nonce + machine_id.bytes


def relay_statement(session_id: uuid.UUID, relay_url: str) -> bytes:
    """Signed by the server: this session's relay is at this URL (a node's own URL)."""
    return RELAY + session_id.bytes + relay_url.encode()


def support_client_proof_statement(
    nonce: bytes, session_id: uuid.UUID, client_public_key: bytes
) -> bytes:
    """Signed by a Support client's in-memory key: the server's fresh nonce, the Support
    session it joined, and the key itself (so the proof names what it proves)."""
    return SUPPORT_CLIENT_PROOF + nonce + session_id.bytes + client_public_key
