"""A lean listener for the relay (``FJERNHJELP_RELAY_BIND``): ``/relay/<session id>``
served by an asyncio protocol of our own in the node's process, next to the ASGI app.

Why: on the main port every relayed message crosses uvicorn's WebSocket protocol, the
ASGI queue, Starlette's WebSocket and a coroutine hop in each direction, and is written
with a system call of its own; that costs about twice what a bare `websockets` relay
costs per byte (docs/BENCHMARKS.md, "The relay's cost per byte"). Here, once both ends
of a session have joined, the frames one end's socket delivers are unmasked (the C
``apply_mask`` of `websockets`) and written to the other end's socket as they are, in
the read's callback: one write per read, not per message, and no task.

What stays as on the main port: the upgrade is refused over the per-address cap of
sockets that have not joined (a probe noted); the first message is the JSON join, at
most ``RELAY_JOIN_MAX`` bytes, within ``AUTH_TIMEOUT``, its token checked and audited
by the same service (RelayEndpoint.check_join); the Relay pairs the ends and holds the
session: its pair timeout, the cut (revocation, the end user's button), the byte counts,
the end reason and the close codes. Each frame's size is read from its header, so a
message over a tunnel record ends the session before it is buffered. A text message
ends it as on the main port. Buffering is bounded per direction: while the receiving
socket's write buffer is over its high-water mark (64 KiB) the sending socket is not
read, so one read (at most 64 KiB) and one partial frame is the most a session holds.

Fairness (server/relay_turns.py): a socket whose read fills its buffer (a bulk copy)
waits for the loop's next pass before it is read again; while a light session (a
desktop: under 4 MiB/s) is about, the waiting sockets take turns, one 16 KiB read per
pass, so a desktop's frame waits behind one small read, not a full read of every copy.

The request and each frame's header are judged by server/wsframes.py (RFC 6455, fail
closed: unmasked, RSV bits, unknown opcodes, long or fragmented control frames, a broken
fragmentation, a malformed close: 1002, the offender told so; sizes from the header).

The payload is never read: the tunnel inside is end-to-end encrypted; this only frames.
No extension (permessage-deflate) and no subprotocol is negotiated. The node's TLS
certificate, when it has one, is served here too.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import logging
import struct
import uuid
from collections import deque
from typing import TYPE_CHECKING, cast

from websockets.speedups import apply_mask

from fjernhjelp.refusals import RelayRefused
from fjernhjelp.server import wsframes
from fjernhjelp.server.probes import Kind
from fjernhjelp.server.relay import (
    MAX_MESSAGE,
    Direction,
    DuplicateEnd,
    EndClosed,
    EndSentTooBig,
    Role,
    SplicingEnd,
)
from fjernhjelp.server.relay_endpoint import AUTH_TIMEOUT, REFUSED
from fjernhjelp.server.relay_turns import LIGHT_BYTES, LIGHT_WINDOW, READ, TakesTurns
from fjernhjelp.server.security import client_address
from fjernhjelp.server.transport_calls import TransportCalls, wake
from fjernhjelp.server.ws_guard import RELAY_JOIN_MAX, TOO_BIG
from fjernhjelp.server.wsframes import MAX_REQUEST

if TYPE_CHECKING:
    from fjernhjelp.server.relay_endpoint import RelayEndpoint
    from fjernhjelp.server.relay_port import ReadBuffer
    from fjernhjelp.server.state import AppState

_log = logging.getLogger(__name__)

CLOSE_GRACE = 2.0  # after our close frame, how long the peer has to answer it

_TEXT, _BINARY, _CLOSE, _PING, _PONG = (
    wsframes.TEXT,
    wsframes.BINARY,
    wsframes.CLOSE,
    wsframes.PING,
    wsframes.PONG,
)
_U16 = struct.Struct("!H")
_HEAD_16 = struct.Struct("!BBH")  # a server frame's header with a 16-bit length
_FIN_BINARY = 0x80 | wsframes.BINARY
_MASKED_16 = 0x80 | 126
_U64 = struct.Struct("!Q")


class _Stage(enum.Enum):
    REQUEST = 1  # reading the HTTP upgrade request
    JOIN = 2  # upgraded; waiting for the join message
    CHECKING = 3  # the token is being checked; not read meanwhile
    JOINED = 4  # with the relay, not read until it pairs the session
    SPLICED = 5  # frames go straight to the other end (both ends are of this kind)
    PIPED = 6  # the relay's pipes take messages through recv/send (the other end is not)
    CLOSING = 7  # our close frame is sent; waiting for the peer's, or the grace
    CLOSED = 8


class _Refused(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class RelaySocket(TransportCalls, TakesTurns, asyncio.BufferedProtocol):
    """One relay socket on the lean listener: upgrade, join, then one end of the relay."""

    def __init__(self, state: AppState, endpoint: RelayEndpoint, reads: ReadBuffer) -> None:
        self._state = state
        self._endpoint = endpoint
        self._reads = reads
        self._turns = reads  # whose turn it is (relay_turns.Turns)
        self._base = 0  # where this read starts in the shared buffer
        self._transport: asyncio.Transport | None = None
        self._loop: asyncio.AbstractEventLoop  # set with the transport
        self._stage = _Stage.REQUEST
        self._buf = bytearray()
        # The client's frames: the join message's limit until it has joined, then a record's.
        self._frames = wsframes.FrameReader(RELAY_JOIN_MAX)
        self._source: str | None = None
        self._pending = False  # counted against the address's cap of unjoined sockets
        self._path = "/relay/"
        self._session: uuid.UUID | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._silent: asyncio.TimerHandle | None = None  # JOIN: ws_silent_seconds
        self._task: asyncio.Task[None] | None = None
        # SPLICED: where frames go, and what the relay is told.
        self._to: RelaySocket | None = None
        self._direction: Direction | None = None
        # PIPED: whole messages for recv(), and the waiters of recv() and send().
        self._inbox: deque[bytes] = deque()
        self._parts: list[bytes] = []
        self._ended: EndClosed | None = None
        self._readable: asyncio.Future[None] | None = None
        self._writable: asyncio.Future[None] | None = None
        self._paused_writing = False
        self._peer_closed = False  # its close frame came: ours ends the connection
        self._skip = 0  # CLOSING: what is left of a frame being dropped
        self._init_turns()  # SPLICED: how much a read takes, and the socket's weight

    # -- asyncio's callbacks -----------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport (uvloop's, under uvicorn, is not an asyncio.Transport subclass).
        self._transport = cast(asyncio.Transport, transport)
        self._loop = asyncio.get_running_loop()
        self._timer = self._loop.call_later(AUTH_TIMEOUT, self._too_slow)

    def get_buffer(self, sizehint: int) -> memoryview:
        reads = self._reads
        held = len(self._buf)
        if self._stage is _Stage.SPLICED and held:
            # The partial frame the last read ended with goes first; the read follows it.
            # Kept here too until the read arrives: a read that finds nothing (the loop
            # asks for a buffer before it knows) never calls buffer_updated.
            reads.buf[:held] = self._buf
            self._base = held
            return reads.view[held : held + self._limit]
        self._base = 0
        return reads.first if self._limit == READ else reads.view[: self._limit]

    def buffer_updated(self, nbytes: int) -> None:
        stage = self._stage
        if stage is _Stage.SPLICED and self._base + nbytes:
            if self._base:
                self._buf.clear()  # its bytes are at the start of the shared buffer
            self._pass(self._reads.buf, self._base + nbytes)
            if self._stage is _Stage.SPLICED:
                self._weighed(nbytes)
            return
        if stage is _Stage.CLOSED:
            return
        self._buf += self._reads.view[:nbytes]
        if stage is _Stage.SPLICED:
            self._pass(self._buf, len(self._buf))
        elif stage is _Stage.PIPED:
            self._collect()
        elif stage is _Stage.REQUEST:
            self._upgrade()
        elif stage is _Stage.JOIN:
            self._read_join()
        elif stage is _Stage.CLOSING:
            self._await_close()
        # CHECKING, JOINED: kept until the relay pairs the session (reading is paused).

    def eof_received(self) -> bool:
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        stage, self._stage = self._stage, _Stage.CLOSED
        self._release()
        if self._timer is not None:
            self._timer.cancel()
        if stage in (_Stage.REQUEST, _Stage.JOIN) and self._task is not None:
            self._task.cancel()
        if stage is _Stage.SPLICED and self._direction is not None:
            self._direction.end("closed")
        self._end(EndClosed())
        if self._to is not None and self._to._stage is _Stage.SPLICED:
            self._to._resume()

    def pause_writing(self) -> None:
        # Our socket's buffer is full: stop reading whoever writes into it.
        self._paused_writing = True
        if self._to is not None and self._to._stage is _Stage.SPLICED:
            self._to._pause()

    def resume_writing(self) -> None:
        self._paused_writing = False
        if self._to is not None and self._to._stage is _Stage.SPLICED:
            self._to._resume()
        wake(self._writable)

    # -- the upgrade and the join ------------------------------------------------------

    def _upgrade(self) -> None:
        try:
            end = wsframes.request_end(self._buf)
            if end is None:
                return
            upgrade = wsframes.parse_upgrade(bytes(self._buf[:end]))
        except wsframes.UpgradeRefused as refused:
            self._http_refuse(refused.status, refused.extra)
            return
        del self._buf[:end]
        self._path, self._session = upgrade.path, upgrade.session
        assert self._transport is not None
        peer = self._transport.get_extra_info("peername")
        self._source = client_address(
            peer[0] if peer else None, upgrade.forwarded_for, self._state.settings
        )
        cap = self._state.unauthenticated_sockets.admit(self._source)
        if cap is not None:
            # This address has too many sockets that have not joined (429), or the node
            # has (503): as on the main port (ws_guard.refuse_upgrade).
            self._endpoint.note_probe(self._source, cap.value, self._path)
            self._http_refuse(cap.http_status, "Retry-After: 5\r\n")
            return
        self._pending = True
        self._transport.write(wsframes.switching_protocols(upgrade.key))
        self._stage = _Stage.JOIN
        self._silent = self._loop.call_later(
            self._state.settings.ws_silent_seconds, self._endpoint.silent, self._source, self._path
        )
        if self._buf:
            self._read_join()

    def _read_join(self) -> None:
        """The first message: a small text frame, or a refusal before it is buffered."""
        while self._stage is _Stage.JOIN:
            try:
                frame = self._frames.next(self._buf)
            except wsframes.FrameRefused as refused:
                if refused.code == TOO_BIG:
                    self._endpoint.note_probe(self._source, Kind.MESSAGE_TOO_BIG, self._path)
                self._refuse(refused.code, refused.reason)
                return
            if frame is None:
                return
            first, payload = frame
            opcode = first & 0x0F
            if opcode == _PING:
                self._write(wsframes.header(0x80 | _PONG, len(payload)) + payload)
            elif opcode == _PONG:
                continue
            elif opcode == _CLOSE:
                self._peer_closed = True
                self._refuse(REFUSED, "refused")
            elif opcode == _TEXT and first & 0x80:
                self._stage = _Stage.CHECKING
                if self._timer is not None:
                    self._timer.cancel()
                if self._silent is not None:
                    self._silent.cancel()
                assert self._transport is not None
                self._transport.pause_reading()
                self._task = asyncio.create_task(self._join(payload))
            else:
                self._refuse(REFUSED, "refused")  # binary, or a join in fragments

    async def _join(self, raw: bytes) -> None:
        assert self._session is not None
        try:
            try:
                auth = json.loads(raw.decode("utf-8"))
                role = Role(auth["role"])
                token = str(auth["token"])
                await asyncio.to_thread(
                    self._endpoint.check_join, self._session, role, token, self._source
                )
            except RelayRefused as exc:
                raise _Refused(REFUSED, exc.reason) from exc
            except (ValueError, KeyError, TypeError) as exc:
                raise _Refused(REFUSED, "refused") from exc
            finally:
                self._release()
        except _Refused as refused:
            self._refuse(refused.code, refused.reason)
            return
        if self._stage is not _Stage.CHECKING:
            return  # gone while its token was checked
        self._stage = _Stage.JOINED
        self._frames.limit = MAX_MESSAGE
        with contextlib.suppress(DuplicateEnd):
            await self._endpoint.relay.join(str(self._session), role, self)

    def _too_slow(self) -> None:
        if self._stage is _Stage.REQUEST:
            self._abort()
        elif self._stage is _Stage.JOIN:
            self._refuse(REFUSED, "refused")

    def _release(self) -> None:
        if self._silent is not None:
            self._silent.cancel()
            self._silent = None
        if self._pending:
            self._pending = False
            self._state.unauthenticated_sockets.release(self._source)

    # -- spliced: frames straight to the other end -------------------------------------

    def splice(self, to: SplicingEnd, direction: Direction) -> None:
        assert isinstance(to, RelaySocket)
        if self._stage is not _Stage.JOINED:
            direction.end("closed")
            return
        self._to, self._direction = to, direction
        self._stage = _Stage.SPLICED
        # Messages sent before the pairing wait in the buffer; pass them on at once, and
        # read on only if the other end takes them.
        asyncio.get_running_loop().call_soon(self._start_splice)

    def _start_splice(self) -> None:
        if self._stage is not _Stage.SPLICED:
            return
        if self._buf:
            self._pass(self._buf, len(self._buf))
        if self._to is not None and not self._to._paused_writing:
            self._resume()

    def _may_read(self) -> bool:
        """Whether a turn may resume this socket (relay_turns.TakesTurns.take_turn)."""
        return (
            self._stage is _Stage.SPLICED and self._to is not None and not self._to._paused_writing
        )

    def _pass(self, buf: bytearray, available: int) -> None:
        """Every whole frame in ``buf[:available]``, unmasked, to the other end in one
        write; a partial frame at the end is kept for the next read."""
        to, direction = self._to, self._direction
        assert to is not None and direction is not None
        if not direction.live or to._stage is not _Stage.SPLICED:
            self._pause()  # cut or ended: the relay is closing both ends
            return
        own = buf is self._buf
        view = memoryview(buf)
        frames = self._frames
        limit = frames.limit
        pos = 0
        out: list[bytes] = []
        passed = 0
        why = None
        try:
            while True:
                # The tunnel's records, nearly every frame: a whole binary message of 126
                # to 65,535 bytes (FIN, no RSV bit, masked, a 16-bit length), within the
                # limit, outside a fragmented message. Judged here in a few byte
                # comparisons; every other frame, and any refusal, through
                # FrameReader.header.
                if (
                    available - pos >= 8
                    and buf[pos] == _FIN_BINARY
                    and buf[pos + 1] == _MASKED_16
                    and not frames.fragmented
                ):
                    length = buf[pos + 2] << 8 | buf[pos + 3]
                    if length <= limit:
                        start = pos + 8
                        if available < start + length:
                            break
                        out.append(_HEAD_16.pack(_FIN_BINARY, 126, length))
                        out.append(apply_mask(view[start : start + length], buf[pos + 4 : start]))
                        pos = start + length
                        passed += length
                        continue
                head = frames.header(buf, pos, available)
                if head is None:
                    break
                first, length, size = head
                opcode = first & 0x0F
                if opcode == _TEXT:
                    why = "closed"  # text (not the tunnel's), as on the main port
                    break
                start = pos + size
                if available < start + length:
                    break  # known from the header to be within the limit
                payload = apply_mask(view[start : start + length], buf[start - 4 : start])
                pos = start + length
                frames.advance(first, length)
                if opcode <= _BINARY:
                    out.append(wsframes.header(first, length))
                    out.append(payload)
                    passed += length
                elif opcode == _CLOSE:
                    wsframes.check_close(payload)
                    self._peer_closed = True
                    why = "closed"
                    break
                elif opcode == _PING:
                    self._write(wsframes.header(0x80 | _PONG, length) + payload)
            if not own and pos < available:
                self._buf += view[pos:available]
        except wsframes.FrameRefused as refused:
            why = "message_too_big" if refused.code == TOO_BIG else "error"
            if why == "error":
                # The offender hears why (1002); the relay closes the other end.
                self._buf.clear()
                self._close(refused.code, refused.reason)
        finally:
            view.release()
        if own:
            del buf[:pos]
        if out:
            direction.count(passed)
            to._write_all(out)
        if why is not None:
            if self._stage is _Stage.SPLICED:
                self._stage = _Stage.JOINED  # read nothing more; the relay closes both ends
                self._pause()
            direction.end(why)

    # -- piped: the relay's recv/send, when the other end is a main-port socket --------

    async def recv(self) -> bytes:
        if self._stage is _Stage.JOINED:
            self._stage = _Stage.PIPED
            self._collect()
        while not self._inbox:
            if self._ended is not None:
                raise self._ended
            self._collect()
            if self._inbox:
                break
            self._resume()
            self._readable = asyncio.get_running_loop().create_future()
            await self._readable
        return self._inbox.popleft()

    async def send(self, data: bytes) -> None:
        if self._ended is not None or self._stage not in (_Stage.PIPED, _Stage.JOINED):
            raise EndClosed
        self._write(wsframes.header(0x80 | _BINARY, len(data)) + data)
        while self._paused_writing and self._ended is None:
            self._writable = asyncio.get_running_loop().create_future()
            await self._writable

    def _collect(self) -> None:
        """Whole messages into the inbox; reading pauses while one is waiting."""
        while self._ended is None and not self._inbox:
            frame = self._next_data_frame()
            if frame is None:
                break
        if self._inbox:
            self._pause()
        wake(self._readable)

    def _next_data_frame(self) -> bool | None:
        buf = self._buf
        try:
            head = self._frames.header(buf)
            if head is not None and head[0] & 0x0F == _TEXT:
                self._end(EndClosed())  # text (not the tunnel's), as on the main port
                return None
            frame = self._frames.next(buf)
        except wsframes.FrameRefused as refused:
            if refused.code == TOO_BIG:
                self._end(EndSentTooBig())
            else:
                # The offender hears why (1002); the relay closes the other end.
                buf.clear()
                self._close(refused.code, refused.reason)
            return None
        if frame is None:
            return None
        first, payload = frame
        opcode = first & 0x0F
        if opcode == _CLOSE:
            self._peer_closed = True
            self._end(EndClosed())
            return None
        if opcode == _PING:
            self._write(wsframes.header(0x80 | _PONG, len(payload)) + payload)
        elif opcode <= _BINARY:
            self._parts.append(payload)
            if first & 0x80:
                self._inbox.append(b"".join(self._parts))
                self._parts = []
        return True

    def _end(self, why: EndClosed) -> None:
        if self._ended is None:
            self._ended = why
        wake(self._readable)
        wake(self._writable)

    # -- closing -----------------------------------------------------------------------

    async def close(self, code: int, reason: str) -> None:
        """The relay's close: our close frame, then the peer's answer or the grace."""
        self._close(code, reason)

    def _close(self, code: int, reason: str) -> None:
        self._end(EndClosed())
        if self._stage in (_Stage.CLOSING, _Stage.CLOSED):
            return
        self._stage = _Stage.CLOSING
        self._write(wsframes.close_frame(code, reason))
        if self._peer_closed:
            assert self._transport is not None
            self._transport.close()  # both close frames are out: the server closes TCP
            return
        self._resume()
        self._timer = asyncio.get_running_loop().call_later(CLOSE_GRACE, self._abort)

    def _await_close(self) -> None:
        # Anything but the peer's close frame is dropped as it comes (a frame's rest is
        # skipped, never held); its close frame ends it.
        if self._skip:
            dropped = min(self._skip, len(self._buf))
            del self._buf[:dropped]
            self._skip -= dropped
        while len(self._buf) >= 2:
            first, second = self._buf[0], self._buf[1]
            length, size = second & 0x7F, 2
            if first & 0x0F == _CLOSE:
                assert self._transport is not None
                self._transport.close()
                return
            if length == 126:
                if len(self._buf) < 4:
                    return
                length, size = _U16.unpack_from(self._buf, 2)[0], 4
            elif length == 127:
                if len(self._buf) < 10:
                    return
                length, size = _U64.unpack_from(self._buf, 2)[0], 10
            whole = size + (4 if second & 0x80 else 0) + length
            if len(self._buf) < size:
                return
            self._skip = max(0, whole - len(self._buf))
            del self._buf[:whole]

    def _refuse(self, code: int, reason: str) -> None:
        """Close an upgraded socket that has not joined (a refusal)."""
        self._release()
        self._stage = _Stage.CHECKING  # read nothing more
        self._close(code, reason)

    def _http_refuse(self, status: str, extra: str = "") -> None:
        assert self._transport is not None
        self._stage = _Stage.CLOSED
        self._transport.write(wsframes.response(status, extra))
        self._transport.close()

    def _abort(self) -> None:
        if self._transport is not None and self._stage is not _Stage.CLOSED:
            self._transport.abort()

    # -- the socket --------------------------------------------------------------------

    def _write_all(self, data: list[bytes]) -> None:
        transport = self._transport
        if transport is not None and not transport.is_closing():
            transport.writelines(data)  # uvloop writes them with one writev, unjoined


__all__ = ["CLOSE_GRACE", "LIGHT_BYTES", "LIGHT_WINDOW", "MAX_REQUEST", "READ", "RelaySocket"]
