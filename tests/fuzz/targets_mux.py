"""Fuzz target for the running tunnel: records fed to a real ``Tunnel`` over an
in-memory transport (docs/tunnel.md §6-§11).

The input is a script of what a hostile peer sends. The harness holds the peer's keys,
so it seals each frame with the right key and counter and the fuzzer reaches the mux,
streams and flow control instead of failing every tag. Script, after one flags byte
(bit 0: the tunnel under test is the technician's end, else the agent's; bit 1: skip the
key-confirming PING), a sequence of operations:

    0x00 len:u16 bytes        seal ``bytes`` as one frame
    0x01 stream:u8 flags:u8 len:u16 fill:u8
                              seal a DATA frame of ``len`` bytes of ``fill``
                              (cheap large fragments: flow control, message size)
    0x02 len:u16 bytes        send ``bytes`` as a record as it is, unsealed
    else                      end of the script

Oracle: the tunnel never ends with internal-error; a frame that breaks §7 or an
unsealed record ends it, with protocol-error/flow-control/message-too-large or
record-error; when it closes on its own it sends GOODBYE with the code it closed with;
every record it sends opens under the peer's key in order; it answers a last PING.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field

from fjernhjelp.tunnel import frames
from fjernhjelp.tunnel.codes import CloseCode
from fjernhjelp.tunnel.errors import ProtocolError, RecordError, TunnelClosed
from fjernhjelp.tunnel.frames import Frame, FrameType
from fjernhjelp.tunnel.framing import RecordOpener, RecordSealer
from fjernhjelp.tunnel.handshake import Role, SessionKeys
from fjernhjelp.tunnel.limits import MAX_PLAINTEXT
from fjernhjelp.tunnel.mux import StreamRequest, Tunnel, TunnelOptions
from fjernhjelp.tunnel.transport import MemoryTransport, TransportClosed, memory_transport_pair
from tests.fuzz.harness import HANG_SECONDS, LOOP, Target, tunnel_vectors, vector_bytes

SENTINEL = b"fuzz-end"
# Codes a tunnel may close with when the peer misbehaves (§12.2); internal-error never.
PEER_FAULTS = frozenset(
    {CloseCode.PROTOCOL_ERROR, CloseCode.FLOW_CONTROL, CloseCode.MESSAGE_TOO_LARGE}
)
OPTIONS = TunnelOptions(close_timeout=HANG_SECONDS)
SERVICES = frozenset({"shell", "files", "desktop", "chat", "info"})


@dataclass
class Script:
    technician: bool
    confirm: bool
    steps: list[tuple[str, bytes]] = field(default_factory=list)  # ("frame" | "raw", bytes)


def parse_script(data: bytes) -> Script:
    flags = data[0] if data else 0
    script = Script(technician=bool(flags & 1), confirm=not flags & 2)
    view, at = memoryview(data), 1
    while at < len(data):
        op = data[at]
        if op in (0, 2) and at + 3 <= len(data):
            (length,) = struct.unpack_from(">H", data, at + 1)
            body = bytes(view[at + 3 : at + 3 + length])
            script.steps.append(("frame" if op == 0 else "raw", body))
            at += 3 + length
        elif op == 1 and at + 7 <= len(data):
            stream, flag, length, fill = struct.unpack_from(">BBHB", data, at + 1)
            header = struct.pack(">BBI", FrameType.DATA, flag, stream)
            script.steps.append(("frame", header + bytes([fill]) * length))
            at += 7
        else:
            break
    return script


async def _allow(request: StreamRequest) -> bool:
    return request.service != "info"  # one refusal path too


class _Peer:
    """The hostile end: seals what the script says, reads what the tunnel sends."""

    def __init__(self, transport: MemoryTransport, send_key: bytes, receive_key: bytes) -> None:
        self.transport = transport
        self.sealer = RecordSealer(send_key)
        self.opener = RecordOpener(receive_key)
        self.goodbye: int | None = None
        self.pong = asyncio.Event()
        self.ended = asyncio.Event()

    async def read(self) -> None:
        try:
            while True:
                record = await self.transport.recv()
                try:
                    got = frames.parse(self.opener.open(record))
                except (RecordError, ProtocolError) as exc:
                    raise AssertionError(f"the tunnel sent a bad record: {exc}") from exc
                if got.type is FrameType.GOODBYE:
                    assert self.goodbye is None, "a second GOODBYE"
                    self.goodbye = frames.reason_of(got.payload)[0]
                elif got.type is FrameType.PONG and got.payload == SENTINEL:
                    self.pong.set()
        except TransportClosed:
            pass
        finally:
            self.ended.set()


async def run_script(data: bytes) -> None:
    script = parse_script(data)
    t2a = vector_bytes("handshake", "key_technician_to_agent")
    a2t = vector_bytes("handshake", "key_agent_to_technician")
    role = Role.TECHNICIAN if script.technician else Role.AGENT
    own_send, own_receive = (t2a, a2t) if script.technician else (a2t, t2a)
    keys = SessionKeys(role, own_send, own_receive, bytes(32), bytes(32))
    near, far = memory_transport_pair(64)
    tunnel = Tunnel(far, keys, OPTIONS, authorize=_allow, services=SERVICES)
    peer = _Peer(near, own_receive, own_send)
    reader = asyncio.ensure_future(peer.read())
    tunnel.start()
    opening: list[asyncio.Task[object]] = []
    if script.technician:
        # Streams 1 and 2 in OPENING, so ACCEPT, DATA and CLOSE have somewhere to go.
        opening = [asyncio.ensure_future(tunnel.open(s)) for s in ("shell", "files")]
        for _ in range(4):
            await asyncio.sleep(0)  # let both OPENs go out before the script answers
    sent: list[tuple[str, bytes]] = []
    if script.confirm:
        sent.append(("frame", Frame(FrameType.PING, 0, bytes(8)).encode()))
    sent += script.steps
    try:
        for kind, body in sent:
            if tunnel.closed is not None:
                break
            record = peer.sealer.seal(body[:MAX_PLAINTEXT]) if kind == "frame" else body
            await near.send(record)
        if tunnel.closed is None:
            await near.send(peer.sealer.seal(Frame(FrameType.PING, 0, SENTINEL).encode()))
            done = asyncio.ensure_future(tunnel.wait_closed())
            pong = asyncio.ensure_future(peer.pong.wait())
            await asyncio.wait((done, pong), return_when=asyncio.FIRST_COMPLETED)
            done.cancel()
            pong.cancel()
        if tunnel.closed is not None:
            # Closed on its own: let the GOODBYE go out and the transport close.
            await tunnel.wait_closed()
            await asyncio.wait_for(peer.ended.wait(), HANG_SECONDS)
        _check(tunnel, peer, sent)
    finally:
        await tunnel.close(CloseCode.NORMAL)
        await asyncio.wait_for(peer.ended.wait(), HANG_SECONDS)
        reader.cancel()
        for task in opening:
            task.cancel()
        with contextlib.suppress(BaseException):
            await asyncio.gather(reader, *opening, return_exceptions=True)
    assert tunnel.closed is not None


def _check(tunnel: Tunnel, peer: _Peer, sent: list[tuple[str, bytes]]) -> None:
    closed = tunnel.closed
    bad = _first_bad_step(sent)
    if closed is None:
        assert bad is None, f"step {bad} breaks the protocol, yet the tunnel stays up"
        assert peer.pong.is_set()
        return
    if closed.by == "peer":
        return  # the script sent a GOODBYE, with any code (the tunnel must not answer it)
    assert closed.code != CloseCode.INTERNAL_ERROR, f"internal error: {closed}"
    assert closed.by == "local", f"closed by {closed.by}: {closed}"
    allowed = set(PEER_FAULTS)
    if any(kind == "raw" for kind, _ in sent):
        allowed.add(CloseCode.RECORD_ERROR)
    assert closed.code in allowed, f"closed with {closed.name}"
    assert peer.goodbye == closed.code, f"GOODBYE {peer.goodbye}, closed with {closed.code}"


def _first_bad_step(sent: list[tuple[str, bytes]]) -> int | None:
    """The first step that the spec says must end the tunnel whatever state it is in:
    an unsealed record, or a frame the strict parser refuses."""
    for index, (kind, body) in enumerate(sent):
        if kind == "raw":
            return index
        try:
            got = frames.parse(body[:MAX_PLAINTEXT])
        except ProtocolError:
            return index
        if got.type is FrameType.GOODBYE:
            return None  # the tunnel ends there, by the peer's word
    return None


def tunnel(data: bytes) -> None:
    try:
        LOOP.run(run_script(data))
    except TunnelClosed as exc:  # pragma: no cover - a send raced the close
        raise AssertionError(f"tunnel closed under the harness: {exc}") from exc


def _seeds() -> Iterable[bytes]:
    def op(body: bytes) -> bytes:
        return b"\x00" + struct.pack(">H", len(body)) + body

    vectors = tunnel_vectors()["records"]
    t2a = [bytes.fromhex(r["frame"]) for r in vectors["technician_to_agent"]]
    a2t = [bytes.fromhex(r["frame"]) for r in vectors["agent_to_technician"]]
    yield b"\x02" + b"".join(op(f) for f in t2a)  # the vector's PING is the confirmation
    yield b"\x00" + b"".join(op(f) for f in t2a[1:])
    yield b"\x01" + b"".join(op(f) for f in a2t)
    open_shell = frames.open_frame(1, "shell", {}).encode()
    big = b"\x01" + struct.pack(">BBHB", 1, 0, 65530, 0x61)
    yield b"\x00" + op(open_shell) + big * 9  # past the window: flow-control
    yield b"\x00" + op(open_shell) + big * 4 + b"\x01" + struct.pack(">BBHB", 1, 1, 10, 0x62)
    yield b"\x00" + op(open_shell) + b"\x02\x00\x20" + bytes(32)
    yield b"\x00" + b"".join(op(frames.open_frame(i, "info", {}).encode()) for i in range(1, 40))


def _open_script(payload: bytes) -> bytes:
    body = bytes([FrameType.OPEN, 0, 0, 0, 0, 1]) + payload[:4096]
    return b"\x00\x00" + struct.pack(">H", len(body)) + body


TARGET = Target("tunnel-mux", tunnel, _seeds, max_len=8192, json_input=_open_script)
