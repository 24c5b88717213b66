"""Fuzz targets for the lean relay listener's own WebSocket server side
(server/wsframes.py, used by server/relay_listener.py): the client's upgrade request and
its frames, read from anyone who connects, before and after the join."""

from __future__ import annotations

import base64
import os
import struct
import uuid
from collections.abc import Iterable
from types import SimpleNamespace
from typing import Any

from fjernhjelp.refusals import RelayRefused
from fjernhjelp.server import wsframes as ws
from fjernhjelp.server.relay import MAX_MESSAGE
from fjernhjelp.server.relay_listener import RelaySocket
from fjernhjelp.server.relay_port import ReadBuffer
from fjernhjelp.server.ws_guard import RELAY_JOIN_MAX, PendingSockets
from tests.fuzz.harness import LOOP, Target, refuses

_SESSION = uuid.UUID("7f1c3a52-8d6e-4c1b-9a0e-2f4b6c8d0e1f")
_KEY = "dGhlIHNhbXBsZSBub25jZQ=="  # RFC 6455 section 1.3's
_STATUSES = {"400", "404", "426", "431"}

# --- the upgrade request ------------------------------------------------------------------


def upgrade(data: bytes) -> None:
    """The bytes a client sends first: an Upgrade for /relay/<uuid> with a key that is
    base64 of 16 bytes and version 13, more to read (never over MAX_REQUEST), or
    UpgradeRefused with 400, 404, 426 or 431."""
    try:
        end = ws.request_end(data)
        if end is None:
            assert len(data) <= ws.MAX_REQUEST  # what is held while the head is read
            return
        found = ws.parse_upgrade(data[:end])
    except ws.UpgradeRefused as refused:
        assert refused.status.split(" ")[0] in _STATUSES, refused.status
        return
    assert end <= ws.MAX_REQUEST + 4
    assert data.startswith(b"GET " + found.path.encode() + b" HTTP/1.1\r\n")
    assert found.path == f"/relay/{found.path[7:]}" and uuid.UUID(found.path[7:]) == found.session
    assert len(base64.b64decode(found.key, validate=True)) == 16


def _request(*headers: str, target: str = f"/relay/{_SESSION}") -> bytes:
    lines = [f"GET {target} HTTP/1.1", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


_BROWSER = (
    "Host: fjh.example.no:8444",
    "Connection: Upgrade",
    "Pragma: no-cache",
    "Upgrade: websocket",
    "Origin: https://fjh.example.no",
    "Sec-WebSocket-Version: 13",
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64) Chrome/131.0.0.0",
    f"Sec-WebSocket-Key: {_KEY}",
    "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits",
)


def _upgrade_seeds() -> Iterable[bytes]:
    yield _request(*_BROWSER)
    yield _request(*_BROWSER) + _frame(0x81, b'{"role":"agent","token":"t"}')  # pipelined
    yield _request(
        "Host: 127.0.0.1",
        "Upgrade: websocket",
        "Connection: keep-alive, Upgrade",
        f"Sec-WebSocket-Key: {_KEY}",
        "Sec-WebSocket-Version: 13",
        "X-Forwarded-For: 192.0.2.7, 10.0.0.1",
        "X-Forwarded-For: 10.0.0.2",
    )
    yield _request(*_BROWSER[:5], "Sec-WebSocket-Version: 8", *_BROWSER[6:])
    yield _request(*_BROWSER, f"Sec-WebSocket-Key: {_KEY}")  # twice
    yield _request(*_BROWSER[1:])  # no Host
    yield _request(*_BROWSER, target="/agent/control")
    yield _request(*_BROWSER, "Cookie: " + "a" * 8000)  # over the bound
    yield _request(*_BROWSER)[:-4]  # not ended yet


# --- the frames -----------------------------------------------------------------------------

_LIMITS = (RELAY_JOIN_MAX, MAX_MESSAGE, 0, 1, 125, 126, 65536)


def frames(data: bytes) -> None:
    """The client's bytes after the upgrade, in reads of a size the first byte chooses,
    under the join's limit, a record's or a small one: whole frames that keep RFC 6455
    (masked, no RSV bit, known opcodes, control frames whole and at most 125 bytes,
    continuations only inside a fragmented message, a message within the limit, a close
    payload with a valid code and UTF-8), or FrameRefused 1002 / 1009 from the header.
    While a frame is not all there, what is held never exceeds a header and the limit
    (or a control frame's 125)."""
    if not data:
        return
    choice, stream = data[0], data[1:]
    limit = _LIMITS[choice % len(_LIMITS)]
    step = (choice >> 3) or len(stream) or 1  # 1..31 bytes per read, or all at once
    reader = ws.FrameReader(limit)
    buf = bytearray()
    fragmented, message = False, 0  # the model, kept apart from the reader's own
    for at in range(0, len(stream), step):
        buf += stream[at : at + step]
        while True:
            try:
                frame = reader.next(buf)
            except ws.FrameRefused as refused:
                assert (refused.code, refused.reason) in (
                    (ws.PROTOCOL_ERROR, "protocol_error"),
                    (ws.TOO_BIG, "message_too_big"),
                )
                return
            if frame is None:
                head = refuses(lambda held=buf: reader.header(held), ws.FrameRefused)
                if head is None:
                    assert len(buf) < ws.MAX_HEADER
                else:
                    _, length, size = head
                    assert len(buf) < size + length <= ws.MAX_HEADER + max(limit, ws.MAX_CONTROL)
                break
            first, payload = frame
            opcode = first & 0x0F
            assert not first & 0x70
            if opcode >= ws.CLOSE:
                assert opcode <= ws.PONG and first & 0x80 and len(payload) <= ws.MAX_CONTROL
                if opcode == ws.CLOSE and payload:
                    code = struct.unpack("!H", payload[:2])[0]
                    assert code >= 1000 and code not in (1004, 1005, 1006, 1015)
                    payload[2:].decode("utf-8")
                continue
            assert opcode in (ws.CONTINUATION, ws.TEXT, ws.BINARY)
            assert (opcode == ws.CONTINUATION) == fragmented
            message += len(payload)
            assert message <= limit
            fragmented = not first & 0x80
            if not fragmented:
                message = 0


def _frame(first: int, payload: bytes, mask: bytes = b"\x37\xfa\x21\x3d") -> bytes:
    length = len(payload)
    if length < 126:
        head = bytes((first, 0x80 | length))
    elif length < 65536:
        head = bytes((first, 0x80 | 126)) + length.to_bytes(2, "big")
    else:
        head = bytes((first, 0x80 | 127)) + length.to_bytes(8, "big")
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return head + mask + masked


def _frame_seeds() -> Iterable[bytes]:
    join = _frame(0x81, b'{"role":"technician","token":"' + b"t" * 43 + b'"}')
    record = _frame(0x82, os.urandom(300))
    fragments = (
        _frame(0x02, b"in ")
        + _frame(0x89, b"ping")
        + _frame(0x00, b"three ")
        + _frame(0x80, b"fragments")
    )
    close = _frame(0x88, struct.pack("!H", 1000) + "ferdig på kontoret".encode())
    for choice in (0x00, 0x01, 0x09, 0x21, 0xF9):  # limits and read sizes
        yield bytes((choice,)) + join + record + fragments + _frame(0x8A, b"") + close
    yield b"\x01" + _frame(0x82, bytes(70_000))[:200]  # a 64-bit length, cut
    yield b"\x00" + bytes((0x82, 0xFF)) + b"\xff" * 8 + b"mask"  # the top bit set
    yield b"\x01" + bytes((0x82, 0x05)) + b"plain"  # unmasked
    yield b"\x01" + _frame(0x88, b"\x03")  # a close of one byte
    yield b"\x01" + _frame(0x88, struct.pack("!H", 1005))
    yield b"\x01" + _frame(0x88, struct.pack("!H", 1000) + b"\xff")
    yield b"\x01" + _frame(0x80, b"nothing to continue")
    yield b"\x01" + _frame(0x09, b"fragmented ping")
    yield b"\x01" + _frame(0x89, bytes(126))
    yield b"\x01" + _frame(0x83, b"reserved") + _frame(0xC2, b"rsv1")


# --- the listener's socket, driven by the bytes ---------------------------------------------


class _Transport:
    """What the socket writes, and whether it paused, closed or aborted."""

    def __init__(self) -> None:
        self.out = bytearray()
        self.closing = False
        self.paused = False

    def write(self, data: bytes) -> None:
        assert not self.closing, "written after close"
        self.out += data

    def writelines(self, data: Iterable[bytes]) -> None:
        for piece in data:
            self.write(piece)

    def close(self) -> None:
        self.closing = True

    abort = close

    def is_closing(self) -> bool:
        return self.closing

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        self.paused = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("192.0.2.7", 50000) if name == "peername" else default


class _Relay:
    async def join(self, session_id: str, role: object, end: object) -> None:
        return None


class _Endpoint:
    relay = _Relay()

    def note_probe(self, source: str | None, kind: str, path: str) -> None:
        pass

    def silent(self, source: str | None, path: str) -> None:
        pass

    def check_join(self, sid: uuid.UUID, role: object, token: str, source: str | None) -> None:
        if token != "godkjent":
            raise RelayRefused("denied")


_STATE = SimpleNamespace(
    settings=SimpleNamespace(trusted_proxy_networks=(), ws_silent_seconds=600.0),
    unauthenticated_sockets=PendingSockets(per_address=4, total=16),
)
_READS = ReadBuffer()
_HTTP = {b"400", b"404", b"426", b"429", b"431", b"503"}
_CLOSE_CODES = {ws.PROTOCOL_ERROR, ws.TOO_BIG, 4403}


async def _drive(data: bytes) -> bytes:
    sock = RelaySocket(_STATE, _Endpoint(), _READS)  # type: ignore[arg-type]
    transport = _Transport()
    sock.connection_made(transport)  # type: ignore[arg-type]
    step = (data[0] if data else 0) or len(data) or 1
    try:
        for at in range(1, len(data), step):
            if transport.closing or transport.paused:
                break  # nothing more is read
            chunk = data[at : at + step]
            view = sock.get_buffer(-1)
            view[: len(chunk)] = chunk
            sock.buffer_updated(len(chunk))
        task = sock._task
        if task is not None:
            await task  # the join's check: its refusal, or the relay
    finally:
        sock.connection_lost(None)
        timer = sock._timer
        if timer is not None:
            timer.cancel()
    assert _STATE.unauthenticated_sockets.count_all() == 0, "a socket still counted"
    return bytes(transport.out)


def listener(data: bytes) -> None:
    """The lean relay listener's socket (RelaySocket) fed the bytes in reads of a size
    the first byte chooses: it answers 101 and then only well-formed server frames
    (pongs of at most 125 bytes, a close of 1002, 1009 or 4403), or one HTTP refusal
    (400, 404, 426, 429, 431, 503) and closes; no exception, and no socket left counted
    against its address once it is gone."""
    out = LOOP.run(_drive(data))
    if not out:
        return
    if not out.startswith(b"HTTP/1.1 101 "):
        assert out[9:12] in _HTTP and out.endswith(b"\r\n\r\n"), out[:40]
        return
    at = out.index(b"\r\n\r\n") + 4
    while at < len(out):
        first, second = out[at], out[at + 1]
        assert first in (0x88, 0x8A) and second <= ws.MAX_CONTROL, out[at : at + 2]
        if first == 0x88:
            code = int.from_bytes(out[at + 2 : at + 4], "big")
            assert code in _CLOSE_CODES, code
        at += 2 + second
    assert at == len(out)


def _listener_seeds() -> Iterable[bytes]:
    request = _request(*_BROWSER)
    join = _frame(0x81, b'{"role":"technician","token":"godkjent"}')
    for step in (0, 1, 7, 64):
        yield bytes((step,)) + request + _frame(0x89, b"ping") + join
    yield b"\x00" + request + _frame(0x81, b'{"role":"agent","token":"nei"}')
    yield b"\x00" + request + _frame(0x81, b"x" * 2000)
    yield b"\x00" + request + _frame(0x88, struct.pack("!H", 1001))
    for seed in _frame_seeds():
        yield b"\x00" + request + seed[1:]


TARGETS = [
    Target("ws-upgrade", upgrade, _upgrade_seeds, max_len=ws.MAX_REQUEST + 1024),
    Target("ws-frames", frames, _frame_seeds, max_len=4096),
    Target("ws-listener", listener, _listener_seeds, max_len=4096),
]
