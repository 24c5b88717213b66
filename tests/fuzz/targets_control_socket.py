"""Fuzz target for the lean agent listener's WebSocket server side
(server/control_socket.py): anyone's bytes, from the upgrade request on, into one
control-link socket whose hub takes every message it is handed."""

from __future__ import annotations

import struct
from collections.abc import Iterable
from types import SimpleNamespace
from typing import Any

from fjernhjelp.server import wsframes as ws
from fjernhjelp.server.control_socket import ControlSocket, Links
from fjernhjelp.server.ws_guard import PROTOCOL_MAX_MESSAGE, Cap, PendingSockets
from tests.fuzz.harness import LOOP, Target
from tests.fuzz.targets_ws import _BROWSER, _frame, _frame_seeds, _request, _Transport


class _Admission:
    def refusal(self) -> int | None:
        return None


class _Hub:
    """What the socket asks of AgentHub: admission, the caps, a probe, and the handler,
    which here takes messages until the disconnect and checks each."""

    def __init__(self) -> None:
        self.admission = _Admission()
        self.settings = SimpleNamespace(trusted_proxy_networks=())
        self.pending = PendingSockets(per_address=4, total=16)
        self.messages: list[str | bytes] = []
        self.ended: int | None = None

    def admit_pending(self, source: str | None) -> Cap | None:
        return self.pending.admit(source)

    def note_probe(self, source: str | None, kind: str) -> None:
        pass

    async def serve_admitted(self, websocket: Any, source: str | None) -> None:
        try:
            while True:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    self.ended = message["code"]
                    return
                data = message.get("text", message.get("bytes"))
                assert isinstance(data, str | bytes)
                size = len(data.encode("utf-8")) if isinstance(data, str) else len(data)
                assert size <= PROTOCOL_MAX_MESSAGE
                self.messages.append(data)
        finally:
            self.pending.release(source)


async def _drive(data: bytes) -> tuple[bytes, _Hub]:
    hub = _Hub()
    links = Links()
    sock = ControlSocket(hub, links)  # type: ignore[arg-type]
    transport = _Transport()
    sock.connection_made(transport)  # type: ignore[arg-type]
    step = (data[0] if data else 0) or len(data) or 1
    for at in range(1, len(data), step):
        if transport.closing or transport.paused:
            break  # nothing more is read
        sock.data_received(data[at : at + step])
    sock.connection_lost(None)
    for handler in list(links.handlers):
        await handler
    assert not links.sockets and not links.handlers
    assert hub.pending.count_all() == 0, "a socket still counted"
    return bytes(transport.out), hub


_HTTP = {b"400", b"404", b"426", b"431"}
_OURS = {ws.PROTOCOL_ERROR, 1007, ws.TOO_BIG}


def control_socket(data: bytes) -> None:
    """The socket fed the bytes in reads of a size the first byte chooses: it answers one
    HTTP refusal (400, 404, 426, 431) and closes, or 101 and then only well-formed
    server frames: pongs of at most 125 bytes, and at most one close, ours (1002, 1007,
    1009) or the answer to the client's; the hub gets only whole messages within the
    limit, text as UTF-8, and then the disconnect; no exception, nothing left counted."""
    out, hub = LOOP.run(_drive(data))
    if not out:
        assert not hub.messages
        return
    if not out.startswith(b"HTTP/1.1 101 "):
        assert out[9:12] in _HTTP and out.endswith(b"\r\n\r\n"), out[:40]
        assert not hub.messages
        return
    assert hub.ended is not None
    at = out.index(b"\r\n\r\n") + 4
    closes = 0
    while at < len(out):
        first, second = out[at], out[at + 1]
        assert first in (0x88, 0x8A) and second <= ws.MAX_CONTROL, out[at : at + 2]
        if first == 0x88:
            closes += 1
            if second:
                code = int.from_bytes(out[at + 2 : at + 4], "big")
                assert code in _OURS or 1000 <= code <= 4999, code
        at += 2 + second
    assert at == len(out) and closes <= 1


def _seeds() -> Iterable[bytes]:
    request = _request(*_BROWSER, target="/agent/control")
    hello = _frame(0x81, b'{"type":"hello","machine_id":"x","signature":"y"}')
    for step in (0, 1, 7, 64):
        yield bytes((step,)) + request + _frame(0x89, b"ping") + hello
    yield b"\x00" + request + _frame(0x01, b'{"type":') + _frame(0x80, b'"hello"}')
    yield b"\x00" + request + _frame(0x81, b"\xff\xfe")  # not UTF-8
    yield b"\x00" + request + _frame(0x88, struct.pack("!H", 1001))
    yield b"\x00" + request + _frame(0x88, b"")
    yield b"\x00" + _request(*_BROWSER)  # the relay's path
    for seed in _frame_seeds():
        yield b"\x00" + request + seed[1:]


TARGETS = [Target("ws-control-socket", control_socket, _seeds, max_len=4096)]
