"""The lean listener's spliced path (server/relay_listener.py) driven read by read, with
no socket: what passes, the checks of its fast path for tunnel records, and when a
socket gives the other sessions a turn, and how the heavy ones share their turns while
a light session is about (relay_turns, held by relay_port.ReadBuffer; interleaving, not timing)."""

from __future__ import annotations

import asyncio
import os
import struct
from types import SimpleNamespace
from typing import Any
from unittest import mock

from hypothesis import example, given, settings
from hypothesis import strategies as st
from websockets.speedups import apply_mask

from fjernhjelp.server import relay_listener
from fjernhjelp.server.relay import MAX_MESSAGE, Direction, Role, _Pair
from fjernhjelp.server.relay_listener import LIGHT_BYTES, LIGHT_WINDOW, READ, RelaySocket, _Stage
from fjernhjelp.server.relay_port import SHARED_TURN, ReadBuffer
from tests.asyncrun import run_async


class Transport:
    def __init__(self) -> None:
        self.out = bytearray()
        self.closing = False
        self.paused = False
        self.pauses = 0

    def write(self, data: bytes) -> None:
        self.out += data

    def writelines(self, data: list[bytes]) -> None:
        for piece in data:
            self.write(piece)

    def close(self) -> None:
        self.closing = True

    abort = close

    def is_closing(self) -> bool:
        return self.closing

    def pause_reading(self) -> None:
        self.paused = True
        self.pauses += 1

    def resume_reading(self) -> None:
        self.paused = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default


def _frame(first: int, payload: bytes) -> bytes:
    mask = os.urandom(4)
    n = len(payload)
    if n < 126:
        head = bytes((first, 0x80 | n))
    elif n < 65536:
        head = bytes((first, 0x80 | 126)) + struct.pack("!H", n)
    else:
        head = bytes((first, 0x80 | 127)) + struct.pack("!Q", n)
    return head + mask + apply_mask(payload, mask)


def _server_frames(out: bytes) -> list[tuple[int, bytes]]:
    frames, at = [], 0
    while at < len(out):
        first, length = out[at], out[at + 1]
        at += 2
        if length == 126:
            (length,) = struct.unpack_from("!H", out, at)
            at += 2
        frames.append((first, bytes(out[at : at + length])))
        at += length
    return frames


async def _pair(
    reads: ReadBuffer | None = None,
) -> tuple[RelaySocket, Transport, RelaySocket, Transport, _Pair]:
    state: Any = SimpleNamespace()
    reads = reads or ReadBuffer()
    pair = _Pair("s1")
    ends = []
    for _ in range(2):
        sock = RelaySocket(state, SimpleNamespace(), reads)  # type: ignore[arg-type]
        transport = Transport()
        sock.connection_made(transport)  # type: ignore[arg-type]
        sock._stage = _Stage.JOINED
        sock._frames.limit = MAX_MESSAGE
        ends.append((sock, transport))
    (a, ta), (b, tb) = ends
    a.splice(b, Direction(pair, Role.TECHNICIAN))
    b.splice(a, Direction(pair, Role.AGENT))
    await asyncio.sleep(0)  # the splice starts on the loop's next turn
    return a, ta, b, tb, pair


def _read(sock: RelaySocket, data: bytes) -> int:
    """One read of what the socket's buffer takes of ``data``, as the loop does it."""
    return _read_full(sock, data)[0]


def _quiet_window(sock: RelaySocket, sent: int = 0) -> None:
    """As if the socket's last window (LIGHT_WINDOW) had ended with ``sent`` bytes read:
    its next read weighs it (no waiting in a test)."""
    sock._window_at = sock._loop.time() - LIGHT_WINDOW
    sock._window_bytes = sent


def _read_full(sock: RelaySocket, data: bytes) -> tuple[int, bool]:
    """As _read, and whether the read filled the buffer the socket offered."""
    view = sock.get_buffer(-1)
    n = min(len(view), len(data))
    view[:n] = data[:n]
    sock.buffer_updated(n)
    return n, n == len(view)


async def test_records_pass_whole_and_a_full_read_gives_the_others_a_turn() -> None:
    a, ta, b, tb, pair = await _pair()
    records = [os.urandom(16 * 1024) for _ in range(12)]
    stream = b"".join(_frame(0x82, r) for r in records)
    # A desktop: a frame of two records, read short of the buffer. It is never paused.
    at = _read(a, stream[: 16 * 1024 + 8 + 100])  # the first record and part of the next
    assert not ta.paused and ta.pauses == 0
    # A bulk copy with more waiting than one read takes: each full read pauses the
    # socket, and it is read again only on the loop's next turn.
    while at < len(stream):
        n, full = _read_full(a, stream[at:])
        at += n
        if full:
            assert ta.paused, "a full read must give the other sessions a turn"
            await asyncio.sleep(0)
            assert not ta.paused
        else:
            assert not ta.paused
    assert ta.pauses >= 2
    assert _server_frames(bytes(tb.out)) == [(0x82, r) for r in records]
    assert pair.counts[Role.TECHNICIAN] == sum(map(len, records))
    assert not pair.done.is_set()
    a.connection_lost(None)
    b.connection_lost(None)


async def test_heavy_sockets_share_one_smaller_turn_while_a_light_session_is_about() -> None:
    reads = ReadBuffer()
    a, ta, b, tb, _ = await _pair(reads)  # a bulk copy from a
    c, tc, d, td, _ = await _pair(reads)  # another from c
    e, te, f, tf, _ = await _pair(reads)  # a desktop from e
    payload = os.urandom(16 * 1024)
    bulk = _frame(0x82, payload) * 40
    sent = {a: 0, c: 0}

    def copy(sock: RelaySocket) -> tuple[int, bool]:
        n, full = _read_full(sock, bulk[sent[sock] :])
        sent[sock] += n
        return n, full

    # Bulk copies alone: each full read waits for the loop's next pass, and then both
    # are read again, a full read each (as before the turns were shared).
    assert copy(a) == (READ, True) and copy(c) == (READ, True)
    assert ta.paused and tc.paused
    await asyncio.sleep(0)
    assert not ta.paused and not tc.paused
    assert copy(a) == (READ, True) and copy(c) == (READ, True)
    await asyncio.sleep(0)
    assert not ta.paused and not tc.paused
    # A socket is heavy until its first window is over: the desktop's first frame
    # changes nothing.
    _read(e, _frame(0x82, b"f" * 3000))
    assert copy(a) == (READ, True) and copy(c) == (READ, True)
    await asyncio.sleep(0)
    assert not ta.paused and not tc.paused
    # Once a window shows it sends little, the desktop's frames make the heavy sockets
    # share their turns: one is read per pass of the loop, in turn, and a smaller read,
    # while the desktop is never paused.
    _quiet_window(e, 3000)
    _read(e, _frame(0x82, b"f" * 3000))
    assert not te.paused and te.pauses == 0
    assert copy(a) == (READ, True) and copy(c) == (READ, True)
    turns = []
    for _ in range(6):
        await asyncio.sleep(0)
        resumed = [sock for sock, t in ((a, ta), (c, tc)) if not t.paused]
        assert len(resumed) == 1, "one heavy socket a pass"
        turns.append(resumed[0])
        assert copy(resumed[0]) == (SHARED_TURN, True)
        _read(e, _frame(0x82, b"f" * 3000))  # the desktop goes on
        assert not te.paused
    assert turns == [a, c] * 3, "in turn"
    # What each copy sent passed whole, in order; the desktop's frames all passed.
    for out in (tb.out, td.out):
        passed = _server_frames(bytes(out))
        assert passed and all(frame == (0x82, payload) for frame in passed)
    assert _server_frames(bytes(tf.out)) == [(0x82, b"f" * 3000)] * 8
    # A light socket that sends a window's worth is heavy at once, and once no light
    # session has sent within a window, the copies are read a full read each again.
    while e._light:
        _read(e, _frame(0x82, b"f" * 16_000))
    assert e._window_bytes >= LIGHT_BYTES
    reads.light_at -= LIGHT_WINDOW
    await asyncio.sleep(0)
    assert not ta.paused and not tc.paused
    assert copy(a) == (READ, True) and copy(c) == (READ, True)
    for sock in (a, b, c, d, e, f):
        sock.connection_lost(None)


async def test_a_closed_or_blocked_socket_gives_its_turn_to_the_next() -> None:
    reads = ReadBuffer()
    a, _, b, _, _ = await _pair(reads)
    c, tc, d, _, _ = await _pair(reads)
    e, _, f, _, _ = await _pair(reads)
    bulk = _frame(0x82, os.urandom(16 * 1024)) * 10
    _quiet_window(e)
    _read(e, _frame(0x82, b"f" * 300))  # a light session is about
    assert _read_full(a, bulk)[1] and _read_full(c, bulk)[1]
    a.connection_lost(None)  # gone while it waited: c has the turn
    await asyncio.sleep(0)
    assert not tc.paused
    n, full = _read_full(c, bulk[READ:])
    assert full and n == SHARED_TURN
    d.pause_writing()  # c's peer is full: c is not read until it is emptied
    await asyncio.sleep(0)
    assert tc.paused and not reads.waiting
    d.resume_writing()
    assert not tc.paused
    for sock in (b, c, d, e, f):
        sock.connection_lost(None)


async def test_the_fast_path_keeps_every_check() -> None:
    # Over the limit (a record and a little more), from the header alone: the session
    # ends as too big and nothing of the frame passes.
    a, ta, b, tb, pair = await _pair()
    big = _frame(0x82, os.urandom(MAX_MESSAGE + 1))
    _read(a, _frame(0x82, b"r" * 200) + big[:14])
    assert _server_frames(bytes(tb.out)) == [(0x82, b"r" * 200)]
    assert pair.reason == "technician_message_too_big"
    a.connection_lost(None)
    b.connection_lost(None)
    # A whole binary message inside a fragmented one: 1002 to the offender.
    a, ta, b, tb, pair = await _pair()
    _read(a, _frame(0x02, b"part") + _frame(0x82, b"x" * 300))
    assert pair.reason == "technician_error"
    assert bytes(ta.out).startswith(b"\x88") and struct.unpack_from("!H", ta.out, 2)[0] == 1002
    assert _server_frames(bytes(tb.out)) == [(0x02, b"part")]
    a.connection_lost(None)
    b.connection_lost(None)
    # Unmasked, or an RSV bit: 1002, as through FrameReader.
    for bad in (
        bytes((0x82, 126)) + struct.pack("!H", 300) + b"x" * 300,
        bytes((0xC2, 0x80 | 126)) + struct.pack("!H", 300) + bytes(4) + b"x" * 300,
    ):
        a, ta, b, tb, pair = await _pair()
        _read(a, bad)
        assert pair.reason == "technician_error" and not tb.out
        a.connection_lost(None)
        b.connection_lost(None)
    # A record split over reads passes once whole; a ping between records is answered.
    a, ta, b, tb, pair = await _pair()
    record = os.urandom(20_000)
    stream = _frame(0x82, record) + _frame(0x89, b"hi") + _frame(0x82, record)
    for cut in (3, 9, 20_008, 20_012):
        _read(a, stream[:cut])
        stream = stream[cut:]
        if cut == 3:
            assert not tb.out
    _read(a, stream)
    assert _server_frames(bytes(tb.out)) == [(0x82, record), (0x82, record)]
    assert _server_frames(bytes(ta.out)) == [(0x8A, b"hi")]
    a.connection_lost(None)
    b.connection_lost(None)


_FRAME = st.tuples(
    st.sampled_from([0x82, 0x82, 0x82, 0x02, 0x00, 0x80, 0x81, 0x89, 0x8A, 0x88, 0xC2, 0x83]),
    st.one_of(st.integers(0, 130), st.integers(126, 70_000)),
    st.booleans(),  # masked
)


@settings(max_examples=150, deadline=None)
@example([(0x02, 10, True), (0x82, 300, True)], [])  # a message inside a fragmented one
@example([(0x82, 300, False)], [])  # unmasked
@example([(0x82, 200, True), (0x89, 3, True), (0x82, 65_535, True)], [5, 300, 40_000])
@example([(0x82, 65_536, True)], [])  # a record and a little more: too big
@given(st.lists(_FRAME, max_size=8), st.lists(st.integers(1, 70_000), max_size=6))
def test_the_fast_path_does_what_frame_reader_does(frames: list, cuts: list[int]) -> None:
    # The same bytes, read in the same pieces, with the fast path for tunnel records and
    # without it (every frame through FrameReader.header): the same bytes to each end,
    # the same counts, the same end.
    stream = b""
    for first, length, masked in frames:
        payload = bytes(i % 251 for i in range(length))
        frame = _frame(first, payload)
        if not masked:
            frame = bytes((frame[0], frame[1] & 0x7F)) + frame[2:]
        stream += frame

    async def run() -> tuple[bytes, bytes, str | None, int]:
        a, ta, b, tb, pair = await _pair()
        rest = stream
        for cut in [*cuts, len(stream)]:
            if not rest or a._stage is not _Stage.SPLICED:
                break
            ta.paused = False
            taken = _read(a, rest[:cut])
            rest = rest[taken:]
        out = bytes(ta.out), bytes(tb.out), pair.reason, pair.counts[Role.TECHNICIAN]
        a.connection_lost(None)
        b.connection_lost(None)
        return out

    fast = run_async(run())
    with mock.patch.object(relay_listener, "_FIN_BINARY", -1):
        slow = run_async(run())
    assert fast == slow
