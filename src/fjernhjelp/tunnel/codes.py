"""Reason codes carried on the wire (docs/tunnel.md, "Codes").

Codes are stable numbers; names are for logs, audit details and the message catalogue
(a technician sees a translated text per code, never free text from the peer).
"""

from __future__ import annotations

from enum import IntEnum


class RefuseCode(IntEnum):
    """Why the agent refused a HELLO. Sent in clear text, so it says nothing secret."""

    UNSUPPORTED_VERSION = 1
    MALFORMED_HELLO = 2
    MALFORMED_TICKET = 3
    BAD_TICKET_SIGNATURE = 4
    TICKET_EXPIRED = 5
    TICKET_NOT_YET_VALID = 6
    WRONG_MACHINE = 7
    UNSUPPORTED_TICKET_VERSION = 8
    KEY_MISMATCH = 9
    REPLAYED_SESSION = 10
    TRY_LATER = 11
    POLICY = 12

    @property
    def slug(self) -> str:
        return self.name.lower().replace("_", "-")


class CloseCode(IntEnum):
    """Why a whole tunnel ended (GOODBYE frame, or a local failure)."""

    NORMAL = 0
    PROTOCOL_ERROR = 1
    FLOW_CONTROL = 2
    MESSAGE_TOO_LARGE = 3
    TIMEOUT = 4
    RECORD_ERROR = 5
    ENDED_BY_USER = 6
    ENDED_BY_TECHNICIAN = 7
    REVOKED = 8
    TICKET_EXPIRED = 9
    CONSENT_DENIED = 10
    CONSENT_TIMEOUT = 11
    GOING_AWAY = 12
    INTERNAL_ERROR = 13
    # Never sent: the transport went away without a GOODBYE.
    TRANSPORT_CLOSED = 0xFFFF

    @property
    def slug(self) -> str:
        return self.name.lower().replace("_", "-")


class StreamCode(IntEnum):
    """Why one stream ended (CLOSE frame)."""

    NORMAL = 0
    REFUSED = 1
    UNKNOWN_SERVICE = 2
    TOO_MANY_STREAMS = 3
    BAD_REQUEST = 4
    ERROR = 5
    # Never sent: the tunnel under the stream ended.
    TUNNEL_CLOSED = 0xFFFF

    @property
    def slug(self) -> str:
        return self.name.lower().replace("_", "-")


def close_name(code: int) -> str:
    """A log-friendly name for any tunnel close code, known or not."""
    try:
        return CloseCode(code).slug
    except ValueError:
        return f"code-{code}"


def stream_name(code: int) -> str:
    try:
        return StreamCode(code).slug
    except ValueError:
        return f"code-{code}"
