"""Builds the shared test vectors, tests/data/vectors/tunnel-v1.json, from fixed inputs.

The browser implementation (and any other) proves byte-for-byte agreement against that
file; test_vectors.py recomputes every value from the inputs with bare primitives, as
docs/tunnel.md describes them. Regenerate only on purpose (a protocol change is a new
version):

    .venv/bin/python -m tests.tunnel.vectors
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from fjernhjelp.tunnel import b64, frames
from fjernhjelp.tunnel.codes import CloseCode, RefuseCode
from fjernhjelp.tunnel.frames import Frame, FrameType
from fjernhjelp.tunnel.framing import RecordSealer
from fjernhjelp.tunnel.handshake import (
    AgentHandshake,
    TechnicianHandshake,
    encode_refuse,
    raw_public,
)
from fjernhjelp.tunnel.replay import MemoryReplayCache
from fjernhjelp.tunnel.tickets import Party, Permission, Ticket, issue_ticket, technician_key_hash

PATH = Path(__file__).parents[1] / "data" / "vectors" / "tunnel-v1.json"
ISSUED_AT = 1_767_225_600  # 2026-01-01T00:00:00Z
MACHINE_ID = "9d3c2a1b-7e6f-4a5b-8c9d-0e1f2a3b4c5d"


def fixed(label: str) -> bytes:
    """32 bytes anyone can recompute from the label."""
    return hashlib.sha256(f"fjernhjelp tunnel test vector: {label}".encode()).digest()


def _raw(key: Ed25519PrivateKey | X25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.Raw,
        serialization.PrivateFormat.Raw,
        serialization.NoEncryption(),
    )


def _pkcs8(key: Ed25519PrivateKey | X25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _records(key: bytes, plaintexts: list[tuple[str, Frame]]) -> list[dict[str, Any]]:
    sealer = RecordSealer(key)
    out = []
    for note, frame in plaintexts:
        counter = sealer.counter
        plaintext = frame.encode()
        out.append(
            {
                "note": note,
                "counter": counter,
                "frame": plaintext.hex(),
                "record": sealer.seal(plaintext).hex(),
            }
        )
    return out


def build() -> dict[str, Any]:
    server = Ed25519PrivateKey.from_private_bytes(fixed("server signing key"))
    agent = Ed25519PrivateKey.from_private_bytes(fixed("agent identity key"))
    technician_ephemeral = X25519PrivateKey.from_private_bytes(fixed("technician ephemeral key"))
    agent_ephemeral = X25519PrivateKey.from_private_bytes(fixed("agent ephemeral key"))
    technician_random = fixed("technician random")
    agent_random = fixed("agent random")

    ticket = Ticket(
        session_id="5b0f6a7e-1c2d-4e3f-8a9b-0c1d2e3f4a5b",
        machine_id=MACHINE_ID,
        technician=Party("7a8b9c0d-1e2f-4a3b-9c4d-5e6f7a8b9c0d", "Kari Nordmann"),
        vendor_org=Party("1f2e3d4c-5b6a-4798-8a7b-6c5d4e3f2a1b", "Journalsystemer AS"),
        customer_org=Party("2a3b4c5d-6e7f-4809-9a1b-2c3d4e5f6a7b", "Blåbærlia legekontor"),
        permissions=frozenset({Permission.VIEW, Permission.CONTROL, Permission.CHAT}),
        consent_required=True,
        issued_at=ISSUED_AT,
        expires_at=ISSUED_AT + 120,
        technician_key_sha256=technician_key_hash(raw_public(technician_ephemeral)),
        grant_id="3c4d5e6f-7a8b-4c9d-8e0f-1a2b3c4d5e6f",
        agreement_ref="Databehandleravtale 2025-11, punkt 4.2",
    )
    token = issue_ticket(server, ticket)
    technician = TechnicianHandshake(
        ticket=token,
        ephemeral=technician_ephemeral,
        agent_identity=agent.public_key(),
        random=technician_random,
    )
    hello = technician.hello()
    answering = AgentHandshake(
        server_key=server.public_key(),
        identity=agent,
        machine_id=MACHINE_ID,
        replay_cache=MemoryReplayCache(),
        ephemeral=agent_ephemeral,
        random=agent_random,
    )
    agent_hello = answering.receive_hello(hello, ISSUED_AT + 5)
    keys = technician.receive(agent_hello)
    shared = technician_ephemeral.exchange(
        X25519PublicKey.from_public_bytes(raw_public(agent_ephemeral))
    )
    ping = bytes(range(1, 9))
    return {
        "description": (
            "fjernhjelp tunnel v1 test vectors (docs/tunnel.md). Every value is hex unless "
            "noted; private keys are raw 32-byte Ed25519 seeds and X25519 scalars; each "
            "fixed input is SHA-256 of 'fjernhjelp tunnel test vector: <label>'."
        ),
        "inputs": {
            "server_signing_private_key": _raw(server).hex(),
            "agent_identity_private_key": _raw(agent).hex(),
            "technician_ephemeral_private_key": _raw(technician_ephemeral).hex(),
            "agent_ephemeral_private_key": _raw(agent_ephemeral).hex(),
            "technician_random": technician_random.hex(),
            "agent_random": agent_random.hex(),
            "machine_id": MACHINE_ID,
            "now": ISSUED_AT + 5,
        },
        # WebCrypto imports private keys as PKCS#8 only, not raw: the same keys wrapped.
        "inputs_pkcs8": {
            "technician_ephemeral_private_key": _pkcs8(technician_ephemeral).hex(),
            "agent_ephemeral_private_key": _pkcs8(agent_ephemeral).hex(),
            "agent_identity_private_key": _pkcs8(agent).hex(),
        },
        "public_keys": {
            "server_signing": raw_public(server).hex(),
            "agent_identity": raw_public(agent).hex(),
            "technician_ephemeral": raw_public(technician_ephemeral).hex(),
            "agent_ephemeral": raw_public(agent_ephemeral).hex(),
        },
        "ticket": {
            "payload_utf8": b64.decode(token.split(".")[0]).decode("utf-8"),
            "token": token,
            "technician_key_sha256": ticket.technician_key_sha256.hex(),
        },
        "handshake": {
            "hello": hello.hex(),
            "agent_hello": agent_hello.hex(),
            "transcript_hash": keys.transcript_hash.hex(),
            "agent_signature": agent_hello[102:].hex(),
            "shared_secret": shared.hex(),
            "key_technician_to_agent": keys.send_key.hex(),
            "key_agent_to_technician": keys.receive_key.hex(),
        },
        "records": {
            "technician_to_agent": _records(
                keys.send_key,
                [
                    ("PING, the key confirmation", Frame(FrameType.PING, 0, ping)),
                    ("OPEN stream 1", frames.open_frame(1, "shell", {"cols": 80, "rows": 24})),
                    ("DATA, one whole message", frames.data_frame(1, b"ls -la\n", end=True)),
                ],
            ),
            "agent_to_technician": _records(
                keys.receive_key,
                [
                    ("PONG", Frame(FrameType.PONG, 0, ping)),
                    ("ACCEPT stream 1", Frame(FrameType.ACCEPT, 1)),
                    ("DATA, first fragment", frames.data_frame(1, "Blå".encode(), end=False)),
                    ("DATA, last fragment", frames.data_frame(1, "bær\n".encode(), end=True)),
                    ("CREDIT", frames.credit_frame(1, 131072)),
                    (
                        "GOODBYE",
                        frames.reason_frame(
                            FrameType.GOODBYE, 0, CloseCode.ENDED_BY_USER, "Avsluttet av brukeren"
                        ),
                    ),
                ],
            ),
        },
        "refuse": {
            "code": int(RefuseCode.KEY_MISMATCH),
            "message": encode_refuse(RefuseCode.KEY_MISMATCH).hex(),
        },
    }


def render() -> str:
    return json.dumps(build(), indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    PATH.write_text(render(), encoding="utf-8")
    print(f"wrote {PATH}")
