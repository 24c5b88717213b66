"""RFC 6455 from the server's side, over bytes only: the client's upgrade request and its
frames' headers, for the lean listeners of the relay (server/relay_listener.py) and of
agents' control links (server/control_socket.py).

Pure so that the fuzz targets (tests/fuzz/targets_wsframes.py) reach every branch without
a socket, and so that each rule is written once for the listener's stages (joining,
spliced, piped). Everything a client sends is either a parsed result or one typed
refusal: ``UpgradeRefused`` (an HTTP status) before the upgrade, ``FrameRefused`` (a close
code) after it. A frame's size is judged from its header, so the caller never buffers
more than ``MAX_HEADER`` and the limit it gave.

What is not checked, and why: the Origin header. The relay's join is authorised by the
one-time token in its first message, never by a cookie the browser adds, so a page of
another origin that opens the socket gains nothing; the main port's relay does not check
it either. Host must be there (RFC 6455 section 4.1), but any value is taken, as on the
main port.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import struct
import uuid
from dataclasses import dataclass

from websockets.speedups import apply_mask

MAX_REQUEST = 8 * 1024  # the upgrade request's head; a browser's is well under 2 KiB
MAX_HEADER = 14  # 2 bytes, a 64-bit length, the mask
MAX_CONTROL = 125  # RFC 6455 section 5.5
PROTOCOL_ERROR = 1002
TOO_BIG = 1009

CONTINUATION, TEXT, BINARY, CLOSE, PING, PONG = 0, 1, 2, 8, 9, 10

_U16 = struct.Struct("!H")
_U64 = struct.Struct("!Q")
_PATH = re.compile(r"/relay/([0-9a-fA-F-]{36})")
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # RFC 9110 field names
_BAD_VALUE = re.compile(r"[\x00\r\n]")


class UpgradeRefused(Exception):
    """The upgrade request is refused with this HTTP status (and these extra headers)."""

    def __init__(self, status: str, extra: str = "") -> None:
        super().__init__(status)
        self.status = status
        self.extra = extra


class FrameRefused(Exception):
    """The connection is closed with ``code``: 1002 (protocol error) or 1009 (too big)."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


_BAD_REQUEST = "400 Bad Request"


def _protocol_error() -> FrameRefused:
    return FrameRefused(PROTOCOL_ERROR, "protocol_error")


@dataclass(frozen=True, slots=True)
class Upgrade:
    path: str
    session: uuid.UUID
    key: str  # Sec-WebSocket-Key, checked: base64 of 16 bytes
    forwarded_for: str | None


def request_end(buf: bytes | bytearray) -> int | None:
    """Where the request's head ends (after its blank line), None while it is not all
    there; 431 once it is longer than ``MAX_REQUEST`` without ending."""
    end = buf.find(b"\r\n\r\n", 0, MAX_REQUEST + 4)
    if end < 0:
        if len(buf) > MAX_REQUEST:
            raise UpgradeRefused("431 Request Header Fields Too Large")
        return None
    return end + 4


@dataclass(frozen=True, slots=True)
class ControlUpgrade:
    """An upgrade to the agents' control link (a fixed path)."""

    key: str  # Sec-WebSocket-Key, checked: base64 of 16 bytes
    forwarded_for: str | None


def parse_upgrade(head: bytes) -> Upgrade:
    """The upgrade request (its head, up to and with its blank line), or UpgradeRefused:
    400 for anything malformed, 404 for a path other than the relay's, 426 for a
    WebSocket version other than 13."""
    target, headers = _request(head)
    match = _PATH.fullmatch(target)
    if match is None:
        raise UpgradeRefused("404 Not Found")
    try:
        session = uuid.UUID(match.group(1))
    except ValueError:
        raise UpgradeRefused("404 Not Found") from None
    key, forwarded = _websocket_headers(headers)
    return Upgrade(match.group(0), session, key, forwarded)


def parse_control_upgrade(head: bytes, path: str) -> ControlUpgrade:
    """As ``parse_upgrade``, for an upgrade to exactly ``path`` (no query): 404 else."""
    target, headers = _request(head)
    if target != path:
        raise UpgradeRefused("404 Not Found")
    return ControlUpgrade(*_websocket_headers(headers))


def _request(head: bytes) -> tuple[str, dict[str, list[str]]]:
    """The request line's target and the header fields by lower-case name; 400 for a
    request that is not a well-formed HTTP/1.1 GET."""
    if len(head) > MAX_REQUEST + 4:
        raise UpgradeRefused("431 Request Header Fields Too Large")
    lines = head.decode("latin-1").removesuffix("\r\n\r\n").split("\r\n")
    headers: dict[str, list[str]] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        # No space before the colon, no folded line, no bare CR or LF, no NUL: a request
        # a proxy in front could read otherwise than we do is refused.
        if not colon or not _TOKEN.fullmatch(name) or _BAD_VALUE.search(value):
            raise UpgradeRefused(_BAD_REQUEST)
        headers.setdefault(name.lower(), []).append(value.strip(" \t"))
    parts = lines[0].split(" ")
    if len(parts) != 3 or parts[0] != "GET" or parts[2] != "HTTP/1.1":
        raise UpgradeRefused(_BAD_REQUEST)
    return parts[1], headers


def _websocket_headers(headers: dict[str, list[str]]) -> tuple[str, str | None]:
    """(Sec-WebSocket-Key, X-Forwarded-For joined) of a request that asks for a version
    13 WebSocket; 400 or 426 else."""

    def one(name: str) -> str | None:
        values = headers.get(name, [])
        if len(values) > 1:
            raise UpgradeRefused(_BAD_REQUEST)
        return values[0] if values else None

    host, key, version = one("host"), one("sec-websocket-key"), one("sec-websocket-version")
    connection = {
        token.strip(" \t").lower()
        for value in headers.get("connection", [])
        for token in value.split(",")
    }
    if not host or (one("upgrade") or "").lower() != "websocket" or "upgrade" not in connection:
        raise UpgradeRefused(_BAD_REQUEST)
    if version != "13":
        raise UpgradeRefused("426 Upgrade Required", "Sec-WebSocket-Version: 13\r\n")
    if key is None or not _valid_key(key):
        raise UpgradeRefused(_BAD_REQUEST)
    forwarded = headers.get("x-forwarded-for")
    return key, ", ".join(forwarded) if forwarded else None


def _valid_key(key: str) -> bool:
    if len(key) != 24:
        return False
    try:
        return len(base64.b64decode(key, validate=True)) == 16
    except (binascii.Error, ValueError):
        return False


def check_close(payload: bytes) -> None:
    """A client's close frame's payload: empty, or a code a peer may send and a UTF-8
    reason (RFC 6455 sections 5.5.1 and 7.4); else FrameRefused 1002."""
    if not payload:
        return
    if len(payload) < 2:
        raise _protocol_error()
    code = _U16.unpack_from(payload)[0]
    if not (1000 <= code <= 1003 or 1007 <= code <= 1014 or 3000 <= code <= 4999):
        raise _protocol_error()  # 1004-1006 and 1015 are never sent; the rest unassigned
    try:
        payload[2:].decode("utf-8")
    except UnicodeDecodeError:
        raise _protocol_error() from None


class FrameReader:
    """The client's frames, one header at a time, and where a fragmented message is.

    ``header`` judges a frame from its header alone (so nothing refused is buffered);
    ``advance`` is told once the frame's payload is consumed. ``limit`` bounds a data
    message, its fragments together; a control frame is bounded by RFC 6455 (125)."""

    __slots__ = ("fragmented", "limit", "message")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.fragmented = False  # a data frame without FIN came: continuations follow
        self.message = 0  # its bytes so far

    def header(
        self, buf: bytes | bytearray, pos: int = 0, available: int | None = None
    ) -> tuple[int, int, int] | None:
        """(first byte, payload length, header size with the mask) of the frame at
        ``buf[pos:available]``; None until its header is all there; or FrameRefused."""
        if available is None:
            available = len(buf)
        if available - pos < 2:
            return None
        first, second = buf[pos], buf[pos + 1]
        opcode = first & 0x0F
        # Client frames are masked; no extension was negotiated, so no RSV bit is set.
        if not second & 0x80 or first & 0x70:
            raise _protocol_error()
        length, size = second & 0x7F, 6
        if opcode >= CLOSE:
            if opcode > PONG or length > MAX_CONTROL or not first & 0x80:
                raise _protocol_error()  # unknown, too long, or fragmented
            return first, length, size
        if opcode > BINARY or (opcode == CONTINUATION) != self.fragmented:
            raise _protocol_error()  # unknown; a continuation of nothing; a message inside one
        if length == 126:
            if available - pos < 4:
                return None
            length, size = _U16.unpack_from(buf, pos + 2)[0], 8
        elif length == 127:
            if available - pos < 10:
                return None
            length, size = _U64.unpack_from(buf, pos + 2)[0], 14
            if length >> 63:
                raise _protocol_error()  # RFC 6455 section 5.2: the top bit is 0
        if self.message + length > self.limit:
            raise FrameRefused(TOO_BIG, "message_too_big")
        return first, length, size

    def advance(self, first: int, length: int) -> None:
        """The frame whose header ``header`` gave is consumed."""
        if first & 0x0F >= CLOSE:
            return
        if first & 0x80:
            self.fragmented, self.message = False, 0
        else:
            self.fragmented, self.message = True, self.message + length

    def next(self, buf: bytearray) -> tuple[int, bytes] | None:
        """The next whole frame taken from the start of ``buf``: (first byte, unmasked
        payload), None until it is all there, or FrameRefused (a close frame's payload
        checked too)."""
        head = self.header(buf)
        if head is None:
            return None
        first, length, size = head
        if len(buf) < size + length:
            return None
        payload = apply_mask(bytes(buf[size : size + length]), bytes(buf[size - 4 : size]))
        del buf[: size + length]
        self.advance(first, length)
        if first & 0x0F == CLOSE:
            check_close(payload)
        return first, payload


__all__ = [
    "BINARY",
    "CLOSE",
    "CONTINUATION",
    "MAX_CONTROL",
    "MAX_HEADER",
    "MAX_REQUEST",
    "PING",
    "PONG",
    "PROTOCOL_ERROR",
    "TEXT",
    "TOO_BIG",
    "ControlUpgrade",
    "FrameReader",
    "FrameRefused",
    "Upgrade",
    "UpgradeRefused",
    "check_close",
    "parse_control_upgrade",
    "parse_upgrade",
    "request_end",
]


# -- what the server writes ------------------------------------------------------------

_ACCEPT_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 section 1.3


def accept_key(key: str) -> str:
    """Sec-WebSocket-Accept for the client's (already checked) Sec-WebSocket-Key."""
    digest = hashlib.sha1(key.encode() + _ACCEPT_GUID, usedforsecurity=False).digest()
    return base64.b64encode(digest).decode()


def switching_protocols(key: str) -> bytes:
    """The 101 answer to an upgrade whose (already checked) key is ``key``: no extension
    and no subprotocol. RFC 6455's fixed derivation proves only that the server speaks
    WebSocket."""
    return (
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Accept: {accept_key(key)}\r\n\r\n"
    ).encode("latin-1")


def header(first: int, length: int) -> bytes:
    """A server frame's header (never masked)."""
    if length < 126:
        return bytes((first, length))
    if length < 65536:
        return bytes((first, 126)) + _U16.pack(length)
    return bytes((first, 127)) + _U64.pack(length)


def close_frame(code: int, reason: str) -> bytes:
    # At most 123 bytes of reason (a control frame's 125), never cut inside a character:
    # a peer fails a close whose reason is not UTF-8.
    reason_bytes = reason.encode("utf-8")[:123].decode("utf-8", "ignore").encode("utf-8")
    payload = _U16.pack(code) + reason_bytes
    return header(0x80 | CLOSE, len(payload)) + payload


def response(status: str, extra: str = "") -> bytes:
    """An HTTP answer with no body that closes the connection (a refused upgrade)."""
    return (f"HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n{extra}\r\n").encode(
        "latin-1"
    )
