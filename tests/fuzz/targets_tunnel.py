"""Fuzz targets for the tunnel's parsers that hold no state between messages:
frames, records, the handshake messages of both sides and the ticket (docs/tunnel.md
§3, §5, §6, §7). The running tunnel is in ``targets_mux.py``."""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable
from functools import cache

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from fjernhjelp.tunnel import b64, frames
from fjernhjelp.tunnel.codes import RefuseCode
from fjernhjelp.tunnel.errors import (
    AgentKeyMismatch,
    AgentRefusal,
    BadAgentSignature,
    BadRecordTag,
    MalformedHandshake,
    ProtocolError,
    RecordError,
    RecordOutOfOrder,
    RecordTooLarge,
    Refused,
    TruncatedRecord,
)
from fjernhjelp.tunnel.framing import RecordOpener, RecordSealer
from fjernhjelp.tunnel.handshake import (
    AGENT_HELLO,
    MAGIC,
    SIGNATURE_LABEL,
    AgentHandshake,
    TechnicianHandshake,
    raw_public,
    transcript_hash,
)
from fjernhjelp.tunnel.limits import MAX_RECORD, MAX_TICKET_TOKEN, MIN_RECORD
from fjernhjelp.tunnel.replay import MemoryReplayCache
from fjernhjelp.tunnel.tickets import TICKET_CONTEXT, Ticket, TicketError, verify_ticket
from tests.fuzz.harness import Target, refuses, same, tunnel_vectors, vector_bytes


@cache
def _inputs() -> dict[str, bytes]:
    raw = tunnel_vectors()["inputs"]
    return {k: bytes.fromhex(v) for k, v in raw.items() if k not in ("machine_id", "now")}


def _server_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(_inputs()["server_signing_private_key"])


def _agent_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(_inputs()["agent_identity_private_key"])


def _now() -> int:
    return int(tunnel_vectors()["inputs"]["now"])


def _machine() -> str:
    return str(tunnel_vectors()["inputs"]["machine_id"])


def _t2a_frames() -> list[bytes]:
    return [bytes.fromhex(r["frame"]) for r in tunnel_vectors()["records"]["technician_to_agent"]]


def _a2t_frames() -> list[bytes]:
    return [bytes.fromhex(r["frame"]) for r in tunnel_vectors()["records"]["agent_to_technician"]]


# --- frames (§7) -----------------------------------------------------------------------


def frame(data: bytes) -> None:
    """Every frame either parses into something the spec allows, or is ProtocolError
    (the tunnel closes with protocol-error); an OPEN's JSON is BadOpenRequest at worst."""
    parsed = refuses(lambda: frames.parse(data), ProtocolError)
    if parsed is None:
        return
    assert len(parsed.payload) == len(data) - 6
    if parsed.type is frames.FrameType.OPEN:
        request = refuses(lambda: frames.open_request_of(parsed.payload), frames.BadOpenRequest)
        if request is not None:
            service, params = request
            assert frames.SERVICE_NAME.fullmatch(service) and isinstance(params, dict)
    elif parsed.type is frames.FrameType.CREDIT:
        assert 0 < frames.credit_of(parsed.payload) < 2**32
    elif parsed.type in (frames.FrameType.CLOSE, frames.FrameType.GOODBYE):
        code, text = frames.reason_of(parsed.payload)
        assert 0 <= code < 2**16 and len(text.encode()) <= 200
    assert parsed.encode() == bytes(data)  # one spelling per frame


def _frame_seeds() -> Iterable[bytes]:
    yield from _t2a_frames()
    yield from _a2t_frames()
    yield frames.reason_frame(frames.FrameType.CLOSE, 1, 4, "bad-request").encode()
    yield frames.open_frame(2, "desktop", {"a": [1, 2.5, None, {"b": "ø"}]}).encode()


def _open_frame(payload: bytes) -> bytes:
    return bytes([frames.FrameType.OPEN, 0, 0, 0, 0, 1]) + payload


# --- records (§6) --------------------------------------------------------------------


def record(data: bytes) -> None:
    """A record either opens (only with the right key, counter and tag) or is a
    RecordError of the kind §6.3 lists, decided before decryption where it can be."""
    opener = RecordOpener(_inputs_key("key_technician_to_agent"))
    try:
        opener.open(data)
    except RecordTooLarge:
        assert len(data) > MAX_RECORD
    except TruncatedRecord:
        assert len(data) < MIN_RECORD
    except RecordOutOfOrder as exc:
        assert exc.got != 0 and exc.got == struct.unpack(">Q", data[:8])[0]
    except BadRecordTag:
        pass
    else:
        assert data[:8] == bytes(8)  # only the first counter opens, under the right key
        return
    # After a failure the opener is spent: nothing more opens, whatever it is.
    try:
        opener.open(_first_record())
    except RecordError:
        return
    raise AssertionError("the opener accepted a record after a failed one")


@cache
def _inputs_key(name: str) -> bytes:
    return vector_bytes("handshake", name)


def _first_record() -> bytes:
    return bytes.fromhex(tunnel_vectors()["records"]["technician_to_agent"][0]["record"])


def _record_seeds() -> Iterable[bytes]:
    for entry in tunnel_vectors()["records"]["technician_to_agent"]:
        yield bytes.fromhex(entry["record"])
    yield RecordSealer(_inputs_key("key_technician_to_agent")).seal(bytes(300))


# --- HELLO, at the agent (§5.5) ------------------------------------------------------------


def agent_hello(data: bytes) -> None:
    """The agent answers any HELLO with AGENT_HELLO or AgentRefusal carrying a REFUSE
    of exactly 8 bytes with a defined code; nothing else."""
    handshake = AgentHandshake(
        server_key=_server_key().public_key(),
        identity=_agent_key(),
        machine_id=_machine(),
        replay_cache=MemoryReplayCache(),
        ephemeral=X25519PrivateKey.from_private_bytes(_inputs()["agent_ephemeral_private_key"]),
    )
    try:
        reply = handshake.receive_hello(data, _now())
    except AgentRefusal as refusal:
        assert refusal.message == MAGIC + bytes([3, 1]) + struct.pack(">H", refusal.code)
        assert isinstance(refusal.code, RefuseCode)
        assert handshake.keys is None
        return
    assert len(reply) == 166 and handshake.keys is not None and handshake.ticket is not None


def _hello_seeds() -> Iterable[bytes]:
    hello = vector_bytes("handshake", "hello")
    yield hello
    yield hello[:72]
    yield hello[:5] + b"\x02" + hello[6:]


# --- the agent's reply, at the technician (§5.6) ---------------------------------------------


def _technician() -> TechnicianHandshake:
    handshake = TechnicianHandshake(
        ticket=tunnel_vectors()["ticket"]["token"],
        ephemeral=X25519PrivateKey.from_private_bytes(
            _inputs()["technician_ephemeral_private_key"]
        ),
        agent_identity=_agent_key().public_key(),
        random=_inputs()["technician_random"],
    )
    handshake.hello()
    return handshake


_REPLY_ERRORS = (Refused, MalformedHandshake, AgentKeyMismatch, BadAgentSignature)


def technician_reply(data: bytes) -> None:
    """The technician takes any reply as keys (only the vector's AGENT_HELLO) or one of
    the four failures of §5.6, and derives nothing after a failure."""
    handshake = _technician()
    keys = refuses(lambda: handshake.receive(data), *_REPLY_ERRORS)
    if keys is None:
        assert handshake.keys is None and handshake.state == "failed"
    else:
        assert data == vector_bytes("handshake", "agent_hello")


def technician_reply_signed(data: bytes) -> None:
    """As ``technician_reply``, but the harness signs whatever AGENT_HELLO the input
    describes with the agent's real identity key, so the fuzzer gets past the signature
    to the ephemeral key (small-order points) and the version byte."""
    handshake = _technician()
    body = (data + bytes(65))[:65]
    signed = MAGIC + bytes([AGENT_HELLO, body[64]]) + body[:64] + raw_public(_agent_key())
    hello = vector_bytes("handshake", "hello")
    signature = _agent_key().sign(SIGNATURE_LABEL + transcript_hash(hello, signed))
    keys = refuses(lambda: handshake.receive(signed + signature), *_REPLY_ERRORS)
    if keys is None:
        assert handshake.keys is None
    else:
        assert body[64] == 1


def _reply_seeds() -> Iterable[bytes]:
    yield vector_bytes("handshake", "agent_hello")
    yield tunnel_vectors()["refuse"]["message"].encode()
    yield bytes.fromhex(tunnel_vectors()["refuse"]["message"])


def _signed_reply_seeds() -> Iterable[bytes]:
    agent_hello = vector_bytes("handshake", "agent_hello")
    yield agent_hello[6:70] + bytes([1])
    yield bytes(64) + bytes([1])
    yield (1).to_bytes(32, "little") + bytes(32) + bytes([1])


# --- tickets (§3) -----------------------------------------------------------------------


def ticket_token(data: bytes) -> None:
    """A token as the agent gets it in HELLO: a Ticket, or a TicketError whose refuse
    code is defined. Almost every input fails at the signature, as it must."""
    result = refuses(
        lambda: verify_ticket(_server_key().public_key(), data, _now(), _machine()), TicketError
    )
    if result is not None:
        assert isinstance(result, Ticket)


def ticket_payload(data: bytes) -> None:
    """The payload behind a signature that verifies: the harness signs the input with
    the server's key, so the fuzzer reaches §3.3 steps 3 to 8 (JSON, types, bounds)."""
    signature = _server_key().sign(TICKET_CONTEXT + data)
    token = f"{b64.encode(data)}.{b64.encode(signature)}"
    try:
        ticket = verify_ticket(_server_key().public_key(), token, _now(), _machine())
    except TicketError as exc:
        assert isinstance(exc.refuse_code, RefuseCode)
        if len(token) > MAX_TICKET_TOKEN:
            assert exc.refuse_code is RefuseCode.MALFORMED_TICKET
        return
    assert len(token) <= MAX_TICKET_TOKEN
    assert 0 < ticket.expires_at - ticket.issued_at <= 900
    assert ticket.machine_id == _machine()
    assert len(ticket.technician_key_sha256) == 32


def _token_seeds() -> Iterable[bytes]:
    yield tunnel_vectors()["ticket"]["token"].encode()


def _payload_seeds() -> Iterable[bytes]:
    payload = tunnel_vectors()["ticket"]["payload_utf8"].encode()
    yield payload
    yield payload.replace(b'"version":1', b'"version":1.0')
    yield payload.replace(b'"view"', b'"view","view"')
    yield hashlib.sha256(payload).digest()


TARGETS = [
    Target("tunnel-frame", frame, _frame_seeds, max_len=4200, json_input=_open_frame),
    Target("tunnel-record", record, _record_seeds, max_len=MAX_RECORD + 16),
    Target("handshake-hello", agent_hello, _hello_seeds, max_len=4200),
    Target("handshake-reply", technician_reply, _reply_seeds, max_len=256),
    Target("handshake-reply-signed", technician_reply_signed, _signed_reply_seeds, max_len=80),
    Target("ticket-token", ticket_token, _token_seeds, max_len=4200),
    Target("ticket-payload", ticket_payload, _payload_seeds, max_len=3200, json_input=same),
]
