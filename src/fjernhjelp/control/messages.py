"""Control-link messages: JSON text frames, one message per WebSocket message.

Parsing is strict (unknown fields and unknown types are refused): a malformed message
closes the link rather than being half-understood.
"""

from __future__ import annotations

import base64
import uuid
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from fjernhjelp.nul import ESCAPED, first_nul

MAX_MESSAGE_BYTES = 64 * 1024


class _Msg(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MachineInfo(_Msg):
    hostname: str = Field(max_length=255)
    os: str = Field(max_length=255)
    users: list[Annotated[str, Field(max_length=64)]] = Field(default_factory=list, max_length=32)
    agent_version: str = Field(max_length=32)
    display: bool = False  # someone is logged in at a screen (consent can be asked)


# -- server -> agent ---------------------------------------------------------------


class Challenge(_Msg):
    type: Literal["challenge"] = "challenge"
    nonce: str  # base64, 32 bytes
    signature: str  # server signing key over statements.server_challenge_statement


class Welcome(_Msg):
    type: Literal["welcome"] = "welcome"
    machine_id: uuid.UUID
    heartbeat_seconds: int


class Dial(_Msg):
    """Open a tunnel for a session: connect to the relay and wait for the technician."""

    type: Literal["dial"] = "dial"
    session_id: uuid.UUID
    relay_url: str = Field(max_length=500)
    relay_token: str = Field(max_length=128)
    # The pinned server key over statements.relay_statement, for a relay URL that is not on
    # the server URL's origin (see control.dial); absent otherwise.
    relay_signature: str | None = Field(default=None, max_length=128)


class Cut(_Msg):
    """End a session now (grant revoked, technician suspended, operator action)."""

    type: Literal["cut"] = "cut"
    session_id: uuid.UUID
    reason: str = Field(max_length=64)


# -- agent -> server ---------------------------------------------------------------


class Hello(_Msg):
    type: Literal["hello"] = "hello"
    machine_id: uuid.UUID
    signature: str  # agent identity key over statements.agent_proof_statement
    info: MachineInfo


class SupportHello(_Msg):
    """A one-time Support client's login: the end-user token it got when the code was
    entered, its in-memory Ed25519 key, and that key's signature over
    statements.support_client_proof_statement."""

    type: Literal["support_hello"] = "support_hello"
    session_id: uuid.UUID
    token: str = Field(max_length=128)
    public_key: str = Field(max_length=64)  # base64, 32 bytes
    signature: str = Field(max_length=128)
    client_version: str = Field(max_length=32)
    # "browser": the start page's screen share (docs/tunnel.md §19), which offers no
    # remote control; absent from the one-time client, which predates the field.
    way: Literal["client", "browser"] = "client"


class Report(_Msg):
    type: Literal["report"] = "report"
    info: MachineInfo


SessionAction = Literal[
    "session.refused",  # the agent refused the ticket (with reason)
    "dial.refused",  # the agent would not dial the relay URL it was sent (control.dial)
    "session.started",
    "session.ended_at_agent",  # how the agent saw it end (by whom, why)
    "consent.asked",
    "consent.given",
    "consent.denied",
    "consent.timed_out",
    "consent.no_display",
    "stream.opened",
    "stream.refused",
    "file.moved",
    "chat.ended",  # counts of messages and characters each way, never the text
    "shell.started",  # run_as and the OS account (name and uid) the shell runs as
    "shell.ended",
    "input.held_back",  # remote input dropped while a consent dialog was open (counts)
    "sas.shown",  # Support: the end user's client showed the words (never the words)
    "sas.failed",  # Support: the technician's reveal did not match HELLO's commitment
]
SESSION_EVENTS: tuple[SessionAction, ...] = get_args(SessionAction)


class SessionEvent(_Msg):
    """Something the server cannot see inside the tunnel, reported for the audit log."""

    type: Literal["event"] = "event"
    session_id: uuid.UUID
    action: SessionAction
    reason: str | None = Field(default=None, max_length=120)
    details: dict[str, Any] = Field(default_factory=dict)


ServerMessage = Annotated[Challenge | Welcome | Dial | Cut, Field(discriminator="type")]
AgentMessage = Annotated[Hello | SupportHello | Report | SessionEvent, Field(discriminator="type")]

_server_adapter: TypeAdapter[Challenge | Welcome | Dial | Cut] = TypeAdapter(ServerMessage)
_agent_adapter: TypeAdapter[Hello | SupportHello | Report | SessionEvent] = TypeAdapter(
    AgentMessage
)


class MalformedMessage(ValueError):
    pass


def _parse(adapter: TypeAdapter[Any], raw: str | bytes) -> Any:
    if len(raw) > MAX_MESSAGE_BYTES:
        raise MalformedMessage("message too large")
    try:
        return adapter.validate_json(raw)
    except ValidationError as exc:
        raise MalformedMessage(f"malformed control message: {exc.error_count()} errors") from exc


def parse_server_message(raw: str | bytes) -> Challenge | Welcome | Dial | Cut:
    return _parse(_server_adapter, raw)


def parse_agent_message(raw: str | bytes) -> Hello | SupportHello | Report | SessionEvent:
    message = _parse(_agent_adapter, raw)
    # No NUL in anything an agent says (fjernhjelp/nul.py): a login is written in a batch
    # with others (server/batches.py), and PostgreSQL refused the whole batch, so one
    # enrolled machine with a NUL in its host name had every login beside its own refused.
    text = raw if isinstance(raw, str) else raw.decode("utf-8", "replace")
    if ESCAPED in text and first_nul(message.model_dump()) is not None:
        raise MalformedMessage("text may not contain the NUL character")
    return message


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def unb64(text: str, length: int | None = None) -> bytes:
    try:
        data = base64.b64decode(text, validate=True)
    except ValueError as exc:
        raise MalformedMessage("bad base64") from exc
    if length is not None and len(data) != length:
        raise MalformedMessage(f"expected {length} bytes")
    return data
