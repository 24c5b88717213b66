"""The tunnel handshake as two sans-I/O state machines (docs/tunnel.md, "Handshake").

    technician                                 agent
    HELLO(eph_t, random_t, ticket)  ------->   verify ticket, key hash, replay
                                    <-------   AGENT_HELLO(eph_a, random_a, id_a, sig)
                                               (or REFUSE(code))
    verify id_a, sig; derive keys              derive keys
    first record: PING              ------->   key confirmation

Nothing here reads or writes a socket: ``session.py`` moves the bytes. Both machines
produce the same ``SessionKeys`` from the same transcript, or raise.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import struct
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from fjernhjelp.tunnel.codes import RefuseCode
from fjernhjelp.tunnel.errors import (
    AgentKeyMismatch,
    AgentRefusal,
    BadAgentSignature,
    MalformedHandshake,
    Refused,
)
from fjernhjelp.tunnel.limits import KEY_SIZE, MAX_TICKET_TOKEN, PROTOCOL_VERSION, SIGNATURE_SIZE
from fjernhjelp.tunnel.replay import ReplayCache, ReplayCacheFull
from fjernhjelp.tunnel.tickets import SignedButInvalid, Ticket, TicketError, verify_ticket

MAGIC = b"FJHT"
HELLO = 0x01
AGENT_HELLO = 0x02
REFUSE = 0x03

HELLO_HEADER = 72  # magic, type, version, key, random, ticket length
AGENT_HELLO_SIGNED = 102  # the part of AGENT_HELLO before the signature
AGENT_HELLO_SIZE = AGENT_HELLO_SIGNED + SIGNATURE_SIZE
REFUSE_SIZE = 8

TRANSCRIPT_LABEL = b"fjernhjelp tunnel v1 transcript\x00"
SIGNATURE_LABEL = b"fjernhjelp tunnel v1 agent signature\x00"
INFO_TECHNICIAN_TO_AGENT = b"fjernhjelp tunnel v1 technician to agent"
INFO_AGENT_TO_TECHNICIAN = b"fjernhjelp tunnel v1 agent to technician"


class Role(Enum):
    TECHNICIAN = "technician"
    AGENT = "agent"


@dataclass(frozen=True)
class SessionKeys:
    """What a finished handshake gives one side: a key per direction, the transcript
    hash, and HELLO's ``random_t`` (which may commit to a SAS nonce, sas.py)."""

    role: Role
    send_key: bytes
    receive_key: bytes
    transcript_hash: bytes
    technician_random: bytes


class PolicyRefusal(Exception):
    """Raised by an agent's policy callback to refuse a ticket the agent will not serve
    (e.g. consent required but nobody is at the screen)."""


def raw_public(key: X25519PrivateKey | Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def transcript_hash(hello: bytes, agent_hello_signed: bytes) -> bytes:
    return hashlib.sha256(TRANSCRIPT_LABEL + hello + agent_hello_signed).digest()


def derive_keys(shared_secret: bytes, transcript: bytes) -> tuple[bytes, bytes]:
    """(technician-to-agent key, agent-to-technician key)."""

    def one(info: bytes) -> bytes:
        return HKDF(hashes.SHA256(), 32, salt=transcript, info=info).derive(shared_secret)

    return one(INFO_TECHNICIAN_TO_AGENT), one(INFO_AGENT_TO_TECHNICIAN)


def encode_refuse(code: RefuseCode) -> bytes:
    return MAGIC + struct.pack(">BBH", REFUSE, PROTOCOL_VERSION, code)


def _exchange(private: X25519PrivateKey, peer_public: bytes) -> bytes:
    # An all-zero result (a low-order peer key) would give keys an attacker knows;
    # OpenSSL refuses it with ValueError, and so does WebCrypto.
    shared = private.exchange(X25519PublicKey.from_public_bytes(peer_public))
    if not any(shared):
        raise ValueError("all-zero X25519 shared secret")
    return shared


class TechnicianHandshake:
    """States: START -> (hello) -> HELLO_SENT -> (receive) -> DONE, or FAILED."""

    def __init__(
        self,
        *,
        ticket: str,
        ephemeral: X25519PrivateKey,
        agent_identity: Ed25519PublicKey,
        random: bytes | None = None,
    ) -> None:
        token = ticket.encode("ascii")
        if not 0 < len(token) <= MAX_TICKET_TOKEN:
            raise ValueError(f"ticket token must be 1 to {MAX_TICKET_TOKEN} bytes")
        self._token = token
        self._ephemeral = ephemeral
        self._agent_identity = agent_identity
        self._random = random if random is not None else secrets.token_bytes(KEY_SIZE)
        if len(self._random) != KEY_SIZE:
            raise ValueError("random must be 32 bytes")
        self._hello: bytes | None = None
        self.state = "start"
        self.keys: SessionKeys | None = None

    def hello(self) -> bytes:
        if self.state != "start":
            raise RuntimeError(f"hello() in state {self.state}")
        self._hello = (
            MAGIC
            + struct.pack(">BB", HELLO, PROTOCOL_VERSION)
            + raw_public(self._ephemeral)
            + self._random
            + struct.pack(">H", len(self._token))
            + self._token
        )
        self.state = "hello-sent"
        return self._hello

    def receive(self, message: bytes) -> SessionKeys:
        """Check the agent's reply; raises Refused, MalformedHandshake, AgentKeyMismatch
        or BadAgentSignature, and no keys exist after a failure."""
        if self.state != "hello-sent" or self._hello is None:
            raise RuntimeError(f"receive() in state {self.state}")
        self.state = "failed"
        if len(message) < 6 or message[:4] != MAGIC:
            raise MalformedHandshake("reply does not start with the tunnel magic")
        kind = message[4]
        if kind == REFUSE:
            if len(message) != REFUSE_SIZE:
                raise MalformedHandshake("REFUSE is not 8 bytes")
            raise Refused(struct.unpack(">H", message[6:8])[0])
        if kind != AGENT_HELLO or len(message) != AGENT_HELLO_SIZE:
            raise MalformedHandshake("reply is neither AGENT_HELLO nor REFUSE")
        if message[5] != PROTOCOL_VERSION:
            # One version only, and it is inside the signed transcript: no downgrade.
            raise MalformedHandshake(f"agent speaks version {message[5]}")
        agent_ephemeral = message[6:38]
        identity = message[70:102]
        signature = message[102:166]
        expected = self._agent_identity.public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        if not hmac.compare_digest(identity, expected):
            raise AgentKeyMismatch("the agent's identity key is not the one the server listed")
        transcript = transcript_hash(self._hello, message[:AGENT_HELLO_SIGNED])
        try:
            self._agent_identity.verify(signature, SIGNATURE_LABEL + transcript)
        except InvalidSignature:
            raise BadAgentSignature("transcript signature does not verify") from None
        try:
            shared = _exchange(self._ephemeral, agent_ephemeral)
        except ValueError:
            raise MalformedHandshake("agent ephemeral key is unusable") from None
        t2a, a2t = derive_keys(shared, transcript)
        self.keys = SessionKeys(Role.TECHNICIAN, t2a, a2t, transcript, self._random)
        self.state = "done"
        return self.keys


class AgentHandshake:
    """States: WAIT_HELLO -> (receive_hello) -> DONE, or FAILED.

    DONE means keys exist; the agent must still treat the session as unconfirmed until the
    technician's first record authenticates (``mux.Tunnel`` does that)."""

    def __init__(
        self,
        *,
        server_key: Ed25519PublicKey,
        identity: Ed25519PrivateKey,
        machine_id: str,
        replay_cache: ReplayCache,
        policy: Callable[[Ticket], None] | None = None,
        ephemeral: X25519PrivateKey | None = None,
        random: bytes | None = None,
    ) -> None:
        self._server_key = server_key
        self._identity = identity
        self._machine_id = machine_id
        self._replay_cache = replay_cache
        self._policy = policy
        self._ephemeral = ephemeral if ephemeral is not None else X25519PrivateKey.generate()
        self._random = random if random is not None else secrets.token_bytes(KEY_SIZE)
        if len(self._random) != KEY_SIZE:
            raise ValueError("random must be 32 bytes")
        self.state = "wait-hello"
        self.ticket: Ticket | None = None
        self.keys: SessionKeys | None = None

    def receive_hello(self, message: bytes, now: float) -> bytes:
        """The AGENT_HELLO to send back, or AgentRefusal carrying the REFUSE to send."""
        if self.state != "wait-hello":
            raise RuntimeError(f"receive_hello() in state {self.state}")
        self.state = "failed"
        ephemeral_t, token = self._parse_hello(message)
        try:
            ticket = verify_ticket(self._server_key, token, now, self._machine_id)
        except SignedButInvalid as exc:
            raise self._refuse(exc.refuse_code, str(exc), exc.ticket) from exc
        except TicketError as exc:
            raise self._refuse(exc.refuse_code, str(exc)) from exc
        key_hash = hashlib.sha256(ephemeral_t).digest()
        if not hmac.compare_digest(key_hash, ticket.technician_key_sha256):
            raise self._refuse(RefuseCode.KEY_MISMATCH, "key is not the ticket's", ticket)
        try:
            shared = _exchange(self._ephemeral, ephemeral_t)
        except ValueError as exc:
            raise self._refuse(RefuseCode.MALFORMED_HELLO, "unusable key", ticket) from exc
        if self._policy is not None:
            try:
                self._policy(ticket)
            except PolicyRefusal as exc:
                raise self._refuse(RefuseCode.POLICY, str(exc) or "local policy", ticket) from exc
        # Last, so a refused attempt does not use up the session id.
        try:
            fresh = self._replay_cache.remember(ticket.session_id, ticket.expires_at, now)
        except ReplayCacheFull as exc:
            raise self._refuse(RefuseCode.TRY_LATER, "replay cache full", ticket) from exc
        if not fresh:
            raise self._refuse(RefuseCode.REPLAYED_SESSION, "session id already used", ticket)
        signed = (
            MAGIC
            + struct.pack(">BB", AGENT_HELLO, PROTOCOL_VERSION)
            + raw_public(self._ephemeral)
            + self._random
            + raw_public(self._identity)
        )
        transcript = transcript_hash(message, signed)
        signature = self._identity.sign(SIGNATURE_LABEL + transcript)
        t2a, a2t = derive_keys(shared, transcript)
        self.ticket = ticket
        self.keys = SessionKeys(Role.AGENT, a2t, t2a, transcript, message[38:70])
        self.state = "done"
        return signed + signature

    def _parse_hello(self, message: bytes) -> tuple[bytes, bytes]:
        if len(message) < 6 or message[:4] != MAGIC or message[4] != HELLO:
            raise self._refuse(RefuseCode.MALFORMED_HELLO, "not a HELLO")
        if message[5] != PROTOCOL_VERSION:
            raise self._refuse(RefuseCode.UNSUPPORTED_VERSION, f"version {message[5]}")
        if len(message) < HELLO_HEADER:
            raise self._refuse(RefuseCode.MALFORMED_HELLO, "HELLO is truncated")
        (length,) = struct.unpack(">H", message[70:72])
        if not 0 < length <= MAX_TICKET_TOKEN or len(message) != HELLO_HEADER + length:
            raise self._refuse(RefuseCode.MALFORMED_HELLO, "ticket length does not match")
        return message[6:38], message[HELLO_HEADER:]

    @staticmethod
    def _refuse(code: RefuseCode, detail: str, ticket: Ticket | None = None) -> AgentRefusal:
        return AgentRefusal(code, encode_refuse(code), detail, ticket)
