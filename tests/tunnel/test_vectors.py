"""The shared vectors: recomputed from their inputs with bare primitives, following
docs/tunnel.md (not the library), then consumed by the library's own state machines.
A second implementation that matches this file speaks the same protocol."""

from __future__ import annotations

import base64
import hashlib
import json
import struct

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from fjernhjelp.tunnel import frames
from fjernhjelp.tunnel.errors import Refused
from fjernhjelp.tunnel.framing import RecordOpener
from fjernhjelp.tunnel.handshake import AgentHandshake, TechnicianHandshake
from fjernhjelp.tunnel.replay import MemoryReplayCache
from fjernhjelp.tunnel.tickets import verify_ticket
from tests.tunnel import vectors

V = json.loads(vectors.PATH.read_text(encoding="utf-8"))
H = bytes.fromhex


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def raw(key) -> bytes:  # type: ignore[no-untyped-def]
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def test_the_file_is_what_the_library_builds() -> None:
    # If this fails after a deliberate protocol change, regenerate with
    # `python -m tests.tunnel.vectors` and bump the protocol version.
    assert vectors.PATH.read_text(encoding="utf-8") == vectors.render()


def test_fixed_inputs_are_their_labels() -> None:
    inputs = V["inputs"]
    assert H(inputs["server_signing_private_key"]) == vectors.fixed("server signing key")
    assert H(inputs["technician_random"]) == vectors.fixed("technician random")


def test_public_keys() -> None:
    i, p = V["inputs"], V["public_keys"]
    assert raw(Ed25519PrivateKey.from_private_bytes(H(i["server_signing_private_key"]))) == H(
        p["server_signing"]
    )
    assert raw(Ed25519PrivateKey.from_private_bytes(H(i["agent_identity_private_key"]))) == H(
        p["agent_identity"]
    )
    for name in ("technician_ephemeral", "agent_ephemeral"):
        key = X25519PrivateKey.from_private_bytes(H(i[f"{name}_private_key"]))
        assert raw(key) == H(p[name])
        pkcs8 = serialization.load_der_private_key(
            H(V["inputs_pkcs8"][f"{name}_private_key"]), None
        )
        assert raw(pkcs8) == H(p[name])


def test_ticket_token() -> None:
    server = Ed25519PrivateKey.from_private_bytes(H(V["inputs"]["server_signing_private_key"]))
    payload = V["ticket"]["payload_utf8"].encode("utf-8")
    signature = server.sign(b"fjernhjelp ticket\x00" + payload)
    assert V["ticket"]["token"] == f"{b64url(payload)}.{b64url(signature)}"
    fields = json.loads(payload)
    assert fields["technician_key_sha256"] == V["ticket"]["technician_key_sha256"]
    assert (
        hashlib.sha256(H(V["public_keys"]["technician_ephemeral"])).hexdigest()
        == (fields["technician_key_sha256"])
    )


def test_hello_bytes() -> None:
    token = V["ticket"]["token"].encode("ascii")
    expected = (
        b"FJHT"
        + bytes([0x01, 0x01])
        + H(V["public_keys"]["technician_ephemeral"])
        + H(V["inputs"]["technician_random"])
        + struct.pack(">H", len(token))
        + token
    )
    assert H(V["handshake"]["hello"]) == expected


def test_agent_hello_transcript_and_signature() -> None:
    hs = V["handshake"]
    signed = (
        b"FJHT"
        + bytes([0x02, 0x01])
        + H(V["public_keys"]["agent_ephemeral"])
        + H(V["inputs"]["agent_random"])
        + H(V["public_keys"]["agent_identity"])
    )
    transcript = hashlib.sha256(
        b"fjernhjelp tunnel v1 transcript\x00" + H(hs["hello"]) + signed
    ).digest()
    assert H(hs["transcript_hash"]) == transcript
    agent = Ed25519PrivateKey.from_private_bytes(H(V["inputs"]["agent_identity_private_key"]))
    signature = agent.sign(b"fjernhjelp tunnel v1 agent signature\x00" + transcript)
    assert H(hs["agent_signature"]) == signature
    assert H(hs["agent_hello"]) == signed + signature


def test_shared_secret_and_keys() -> None:
    hs = V["handshake"]
    technician = X25519PrivateKey.from_private_bytes(
        H(V["inputs"]["technician_ephemeral_private_key"])
    )
    agent = X25519PrivateKey.from_private_bytes(H(V["inputs"]["agent_ephemeral_private_key"]))
    shared = technician.exchange(agent.public_key())
    assert shared == agent.exchange(technician.public_key()) == H(hs["shared_secret"])

    def hkdf(info: bytes) -> bytes:
        return HKDF(hashes.SHA256(), 32, salt=H(hs["transcript_hash"]), info=info).derive(shared)

    assert hkdf(b"fjernhjelp tunnel v1 technician to agent") == H(hs["key_technician_to_agent"])
    assert hkdf(b"fjernhjelp tunnel v1 agent to technician") == H(hs["key_agent_to_technician"])


@pytest.mark.parametrize(
    ("direction", "key_name"),
    [
        ("technician_to_agent", "key_technician_to_agent"),
        ("agent_to_technician", "key_agent_to_technician"),
    ],
)
def test_records(direction: str, key_name: str) -> None:
    aead = AESGCM(H(V["handshake"][key_name]))
    for expected_counter, entry in enumerate(V["records"][direction]):
        assert entry["counter"] == expected_counter
        header = struct.pack(">Q", expected_counter)
        nonce = bytes(4) + header
        record = header + aead.encrypt(nonce, H(entry["frame"]), header)
        assert H(entry["record"]) == record, entry["note"]


def test_frame_bytes_by_hand() -> None:
    t2a = [H(e["frame"]) for e in V["records"]["technician_to_agent"]]
    a2t = [H(e["frame"]) for e in V["records"]["agent_to_technician"]]
    assert t2a[0] == bytes([0x06, 0x00, 0, 0, 0, 0]) + bytes(range(1, 9))
    assert (
        t2a[1]
        == bytes([0x01, 0x00, 0, 0, 0, 1])
        + json.dumps(
            {"service": "shell", "params": {"cols": 80, "rows": 24}}, separators=(",", ":")
        ).encode()
    )
    assert t2a[2] == bytes([0x03, 0x01, 0, 0, 0, 1]) + b"ls -la\n"
    assert a2t[0] == bytes([0x07, 0x00, 0, 0, 0, 0]) + bytes(range(1, 9))
    assert a2t[1] == bytes([0x02, 0x00, 0, 0, 0, 1])
    assert a2t[2] == bytes([0x03, 0x00, 0, 0, 0, 1]) + "Blå".encode()
    assert a2t[3] == bytes([0x03, 0x01, 0, 0, 0, 1]) + "bær\n".encode()
    assert a2t[4] == bytes([0x04, 0x00, 0, 0, 0, 1]) + struct.pack(">I", 131072)
    assert a2t[5] == bytes([0x08, 0x00, 0, 0, 0, 0]) + struct.pack(">H", 6) + (
        b"Avsluttet av brukeren"
    )


def test_refuse_bytes() -> None:
    assert H(V["refuse"]["message"]) == b"FJHT" + bytes([0x03, 0x01]) + struct.pack(
        ">H", V["refuse"]["code"]
    )


def test_the_library_accepts_the_vectors() -> None:
    i, hs = V["inputs"], V["handshake"]
    server = Ed25519PrivateKey.from_private_bytes(H(i["server_signing_private_key"]))
    agent = Ed25519PrivateKey.from_private_bytes(H(i["agent_identity_private_key"]))
    ticket = verify_ticket(server.public_key(), V["ticket"]["token"], i["now"], i["machine_id"])
    assert ticket.customer_org.name == "Blåbærlia legekontor"
    answering = AgentHandshake(
        server_key=server.public_key(),
        identity=agent,
        machine_id=i["machine_id"],
        replay_cache=MemoryReplayCache(),
        ephemeral=X25519PrivateKey.from_private_bytes(H(i["agent_ephemeral_private_key"])),
        random=H(i["agent_random"]),
    )
    assert answering.receive_hello(H(hs["hello"]), i["now"]) == H(hs["agent_hello"])
    technician = TechnicianHandshake(
        ticket=V["ticket"]["token"],
        ephemeral=X25519PrivateKey.from_private_bytes(H(i["technician_ephemeral_private_key"])),
        agent_identity=agent.public_key(),
        random=H(i["technician_random"]),
    )
    assert technician.hello() == H(hs["hello"])
    keys = technician.receive(H(hs["agent_hello"]))
    assert keys.send_key == H(hs["key_technician_to_agent"])
    for direction, key in (
        ("technician_to_agent", keys.send_key),
        ("agent_to_technician", keys.receive_key),
    ):
        opener = RecordOpener(key)
        for entry in V["records"][direction]:
            plaintext = opener.open(H(entry["record"]))
            assert plaintext == H(entry["frame"])
            frames.parse(plaintext)
    refused = TechnicianHandshake(
        ticket=V["ticket"]["token"],
        ephemeral=X25519PrivateKey.generate(),
        agent_identity=agent.public_key(),
    )
    refused.hello()
    with pytest.raises(Refused) as info:
        refused.receive(H(V["refuse"]["message"]))
    assert info.value.code == V["refuse"]["code"]
