"""Mux frames: the plaintext of one record (docs/tunnel.md, "Frames").

    type (1) | flags (1) | stream id (4, big-endian) | payload

Parsing is strict: an unknown type, a flag bit that type does not define, a stream id
that type may not use, or a payload of the wrong size is a ProtocolError, and the tunnel
closes. Only authenticated plaintext ever reaches this parser.
"""

from __future__ import annotations

import json
import re
import struct
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from fjernhjelp.tunnel.errors import ProtocolError
from fjernhjelp.tunnel.limits import FRAME_HEADER, MAX_FRAGMENT, MAX_OPEN_REQUEST, MAX_REASON

_HEADER = struct.Struct(">BBI")
_U32 = struct.Struct(">I")
_U16 = struct.Struct(">H")

FLAG_END = 0x01  # DATA: the last fragment of a message
SERVICE_NAME = re.compile(r"[a-z][a-z0-9-]{0,31}")
CONTROL_STREAM = 0
MAX_STREAM_ID = 2**32 - 1


class FrameType(IntEnum):
    OPEN = 0x01
    ACCEPT = 0x02
    DATA = 0x03
    CREDIT = 0x04
    CLOSE = 0x05
    PING = 0x06
    PONG = 0x07
    GOODBYE = 0x08


# (payload minimum, payload maximum, stream id rule) per type; rule: 0 = must be the control
# stream, 1 = must not be, None = any.
_RULES: dict[FrameType, tuple[int, int, int | None]] = {
    FrameType.OPEN: (2, MAX_OPEN_REQUEST, 1),
    FrameType.ACCEPT: (0, 0, 1),
    FrameType.DATA: (0, MAX_FRAGMENT, None),
    FrameType.CREDIT: (4, 4, None),
    FrameType.CLOSE: (2, 2 + MAX_REASON, 1),
    FrameType.PING: (8, 8, 0),
    FrameType.PONG: (8, 8, 0),
    FrameType.GOODBYE: (2, 2 + MAX_REASON, 0),
}


@dataclass(frozen=True, slots=True)
class Frame:
    type: FrameType
    stream: int
    payload: bytes = b""
    flags: int = 0

    def encode(self) -> bytes:
        return _HEADER.pack(self.type, self.flags, self.stream) + self.payload


def parse(data: bytes) -> Frame:
    if len(data) < FRAME_HEADER:
        raise ProtocolError(f"frame of {len(data)} bytes is shorter than its header")
    kind, flags, stream = _HEADER.unpack_from(data)
    try:
        frame_type = FrameType(kind)
    except ValueError:
        raise ProtocolError(f"unknown frame type 0x{kind:02x}") from None
    payload = bytes(data[FRAME_HEADER:])
    low, high, rule = _RULES[frame_type]
    if not low <= len(payload) <= high:
        raise ProtocolError(f"{frame_type.name} payload of {len(payload)} bytes")
    allowed_flags = FLAG_END if frame_type is FrameType.DATA else 0
    if flags & ~allowed_flags:
        raise ProtocolError(f"{frame_type.name} with undefined flags 0x{flags:02x}")
    if rule == 0 and stream != CONTROL_STREAM:
        raise ProtocolError(f"{frame_type.name} on stream {stream}, not the control stream")
    if rule == 1 and stream == CONTROL_STREAM:
        raise ProtocolError(f"{frame_type.name} on the control stream")
    if frame_type is FrameType.DATA and not payload and not flags & FLAG_END:
        # An empty fragment that ends nothing would cost no window: refuse it.
        raise ProtocolError("empty DATA fragment without END")
    if frame_type is FrameType.CREDIT and credit_of(payload) == 0:
        raise ProtocolError("CREDIT of zero")
    if frame_type in (FrameType.CLOSE, FrameType.GOODBYE):
        reason_of(payload)
    return Frame(frame_type, stream, payload, flags)


# --- payloads ----------------------------------------------------------------------------


def open_frame(stream: int, service: str, params: dict[str, Any]) -> Frame:
    if not SERVICE_NAME.fullmatch(service):
        raise ValueError(f"service name {service!r} is not [a-z][a-z0-9-]{{0,31}}")
    body = json.dumps({"service": service, "params": params}, separators=(",", ":")).encode()
    if len(body) > MAX_OPEN_REQUEST:
        raise ValueError(f"OPEN request of {len(body)} bytes exceeds {MAX_OPEN_REQUEST}")
    return Frame(FrameType.OPEN, stream, body)


class BadOpenRequest(ValueError):
    """An OPEN whose JSON is not {"service": name, "params": object}: the stream is refused
    with BAD_REQUEST; the tunnel stays up."""


def open_request_of(payload: bytes) -> tuple[str, dict[str, Any]]:
    try:
        body = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise BadOpenRequest("OPEN payload is not UTF-8 JSON") from None
    if not isinstance(body, dict) or set(body) != {"service", "params"}:
        raise BadOpenRequest("OPEN payload is not {service, params}")
    service, params = body["service"], body["params"]
    if not isinstance(service, str) or not SERVICE_NAME.fullmatch(service):
        raise BadOpenRequest("service name is malformed")
    if not isinstance(params, dict):
        raise BadOpenRequest("params is not an object")
    return service, params


def data_frame(stream: int, chunk: bytes, end: bool) -> Frame:
    return Frame(FrameType.DATA, stream, chunk, FLAG_END if end else 0)


def credit_frame(stream: int, amount: int) -> Frame:
    return Frame(FrameType.CREDIT, stream, _U32.pack(amount))


def credit_of(payload: bytes) -> int:
    (amount,) = _U32.unpack(payload)
    return int(amount)


def reason_frame(kind: FrameType, stream: int, code: int, text: str) -> Frame:
    """A CLOSE or GOODBYE; the text is cut to MAX_REASON bytes on a character boundary."""
    raw = text.encode("utf-8")[:MAX_REASON].decode("utf-8", "ignore").encode("utf-8")
    return Frame(kind, stream, _U16.pack(code) + raw)


def reason_of(payload: bytes) -> tuple[int, str]:
    (code,) = _U16.unpack_from(payload)
    try:
        return code, payload[2:].decode("utf-8")
    except UnicodeDecodeError:
        raise ProtocolError("reason text is not UTF-8") from None
