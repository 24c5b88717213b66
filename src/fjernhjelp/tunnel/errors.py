"""Failures of the tunnel, as types that carry what went wrong.

Ticket failures live in ``tickets.py``. Every failure here ends the tunnel (fail closed)
except ``MessageTooLarge``, which refuses one local ``send`` before anything is written,
and ``StreamRefused``/``StreamClosed``, which end one stream.
"""

from __future__ import annotations

from fjernhjelp.tunnel.channel import ChannelClosed
from fjernhjelp.tunnel.codes import CloseCode, RefuseCode, StreamCode, close_name, stream_name


class TunnelError(Exception):
    """Base of every tunnel failure except the ChannelClosed family."""


# --- handshake -----------------------------------------------------------------------


class HandshakeError(TunnelError):
    """The handshake did not complete; no keys exist."""


class MalformedHandshake(HandshakeError):
    """A handshake message that does not parse (technician side: the agent's reply)."""


class HandshakeTimeout(HandshakeError):
    """The peer did not answer within the handshake timeout."""


class Refused(HandshakeError):
    """Technician side: the agent sent REFUSE. The code is unauthenticated (anyone on the
    path could forge it), so it is shown to the technician, never trusted for anything."""

    def __init__(self, code: int) -> None:
        self.code = code
        try:
            name = RefuseCode(code).slug
        except ValueError:
            name = f"code-{code}"
        super().__init__(f"agent refused the session: {name}")
        self.name = name


class AgentRefusal(HandshakeError):
    """Agent side: this agent refuses the HELLO. ``message`` is the REFUSE to send back;
    ``__cause__`` holds the underlying failure (for the audit, never for the peer)."""

    def __init__(
        self, code: RefuseCode, message: bytes, detail: str, ticket: object | None = None
    ) -> None:
        super().__init__(f"refused ({code.slug}): {detail}")
        self.code = code
        self.message = message
        self.detail = detail
        # The ticket, when its signature verified (so its fields are the server's word):
        # what the audit records about a refused attempt. None for forged or malformed ones.
        self.ticket = ticket


class AgentKeyMismatch(HandshakeError):
    """The agent presented an identity key other than the one the server listed."""


class BadAgentSignature(HandshakeError):
    """The transcript signature does not verify under the agent's identity key."""


# --- records -------------------------------------------------------------------------


class RecordError(TunnelError):
    """A record failed: the tunnel must close (close code RECORD_ERROR)."""


class TruncatedRecord(RecordError):
    def __init__(self, size: int) -> None:
        super().__init__(f"record of {size} bytes is shorter than header and tag")
        self.size = size


class RecordTooLarge(RecordError):
    def __init__(self, size: int) -> None:
        super().__init__(f"record of {size} bytes exceeds the maximum")
        self.size = size


class RecordOutOfOrder(RecordError):
    """The counter is not the next one: a replay, a reorder or a dropped record."""

    def __init__(self, expected: int, got: int) -> None:
        super().__init__(f"record counter {got}, expected {expected}")
        self.expected = expected
        self.got = got


class BadRecordTag(RecordError):
    def __init__(self, counter: int) -> None:
        super().__init__(f"record {counter} failed authentication")
        self.counter = counter


class CounterExhausted(RecordError):
    """2^64 records in one direction: never in practice, but never a nonce reuse either."""


class RecordsDisabled(RecordError):
    """A previous record failed; this direction accepts nothing more."""


# --- frames and streams -----------------------------------------------------------------


class ProtocolError(TunnelError):
    """The peer broke the mux protocol; the tunnel closes with ``code``."""

    def __init__(self, detail: str, code: CloseCode = CloseCode.PROTOCOL_ERROR) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


class MessageTooLarge(ValueError):
    """A local send of a message larger than MAX_MESSAGE; nothing was sent."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"message of {size} bytes exceeds {limit}")
        self.size = size
        self.limit = limit


class TunnelClosed(ChannelClosed):
    """The tunnel ended; every stream of it raises this. ``by`` is "local", "peer" or
    "transport"."""

    def __init__(self, code: int, reason: str = "", by: str = "local") -> None:
        name = close_name(code)
        super().__init__(f"tunnel closed: {name}" + (f" ({reason})" if reason else ""))
        self.code = code
        self.name = name
        self.text = reason
        self.by = by


class StreamClosed(ChannelClosed):
    """One stream ended with a code; ``text`` is the peer's free text (for logs only)."""

    def __init__(self, code: int, text: str = "", by: str = "peer") -> None:
        name = stream_name(code)
        super().__init__(text or name)
        self.code = code
        self.name = name
        self.text = text
        self.by = by


class StreamRefused(StreamClosed):
    """Technician side: the agent refused to open the stream (permission, unknown service,
    too many streams)."""


def stream_code_for(reason: str) -> StreamCode:
    """The wire code for a ``Channel.close(reason)`` text: a known slug maps to its code,
    anything else is an application ERROR unless it is the plain "closed"."""
    if reason in ("", "closed"):
        return StreamCode.NORMAL
    for code in StreamCode:
        if code.slug == reason and code is not StreamCode.TUNNEL_CLOSED:
            return code
    return StreamCode.ERROR
