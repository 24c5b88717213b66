"""A running tunnel: records over a transport, streams over records (docs/tunnel.md).

Three tasks per tunnel: the reader (opens records in order and dispatches frames; it
never waits for an application, so PING and CREDIT are always answered), the writer (the
only one that seals, so counters go out in order; urgent frames before data), and the
keep-alive. Any failure closes the whole tunnel and every stream raises TunnelClosed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections import deque
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from fjernhjelp.tunnel import frames
from fjernhjelp.tunnel.codes import CloseCode, StreamCode
from fjernhjelp.tunnel.errors import ProtocolError, RecordError, StreamRefused, TunnelClosed
from fjernhjelp.tunnel.frames import CONTROL_STREAM, Frame, FrameType
from fjernhjelp.tunnel.framing import RecordOpener, RecordSealer
from fjernhjelp.tunnel.handshake import Role, SessionKeys
from fjernhjelp.tunnel.limits import MAX_STREAMS
from fjernhjelp.tunnel.streams import Stream
from fjernhjelp.tunnel.tickets import Ticket
from fjernhjelp.tunnel.transport import Transport, TransportClosed

log = logging.getLogger(__name__)

DEFAULT_SERVICES = frozenset({"shell", "files", "desktop", "chat", "info"})


@dataclass(frozen=True)
class TunnelOptions:
    """Local timers; not part of the wire protocol."""

    ping_interval: float = 15.0  # send PING after this long without receiving anything
    ping_timeout: float = 30.0  # close after interval + timeout without receiving anything
    handshake_timeout: float = 30.0  # HELLO to key confirmation
    close_timeout: float = 2.0  # how long a GOODBYE may take to go out


@dataclass
class TunnelStats:
    """Bytes each way, for the audit. ``bytes_*`` count everything on the transport
    (handshake, record headers and tags); ``payload_*`` count stream messages only."""

    bytes_sent: int = 0
    bytes_received: int = 0
    records_sent: int = 0
    records_received: int = 0
    payload_sent: int = 0
    payload_received: int = 0


@dataclass(frozen=True)
class StreamRequest:
    """What the technician asked for, with the verified ticket the decision rests on."""

    stream_id: int
    service: str
    params: dict[str, Any] = field(default_factory=dict)
    ticket: Ticket | None = None


Authorize = Callable[[StreamRequest], Awaitable[bool]]

class _Pong(Enum):
    """Marks the one queued PONG; its payload is the latest PING's."""

    PONG = "pong"


_PONG = _Pong.PONG


class Tunnel:
    """One end of an established tunnel. Made by ``session.connect`` (technician) or
    ``session.accept`` (agent), not directly."""

    def __init__(
        self,
        transport: Transport,
        keys: SessionKeys,
        options: TunnelOptions,
        *,
        ticket: Ticket | None = None,
        authorize: Authorize | None = None,
        services: Collection[str] = DEFAULT_SERVICES,
        stats: TunnelStats | None = None,
    ) -> None:
        if keys.role is Role.AGENT and authorize is None:
            raise ValueError("the agent side needs an authorize callback")
        self.role = keys.role
        self.ticket = ticket
        self.transcript_hash = keys.transcript_hash
        self.technician_random = keys.technician_random  # the SAS commitment (sas.py)
        self.stats = stats or TunnelStats()
        self._transport = transport
        self._options = options
        self._sealer = RecordSealer(keys.send_key)
        self._opener = RecordOpener(keys.receive_key)
        self._authorize = authorize
        self._services = frozenset(services)
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._streams: dict[int, Stream] = {}
        self._last_stream_id = 0
        self.control = self._add_stream(CONTROL_STREAM, "control", {}, "open")
        self._incoming: deque[tuple[StreamRequest, Stream]] = deque()
        self._incoming_ready = asyncio.Event()
        self._urgent: deque[Frame | _Pong] = deque()
        self._pong_payload = b""
        self._data: deque[tuple[bytes, asyncio.Future[None]]] = deque()
        self._in_flight: asyncio.Future[None] | None = None  # the data frame being written
        self._wake_writer = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._last_received = loop.time()
        self._last_ping = loop.time()
        # The agent waits for the technician's first record (a PING) as key confirmation.
        self._confirmed: asyncio.Future[None] = loop.create_future()
        if self.role is Role.TECHNICIAN:
            self._confirmed.set_result(None)
        self.closed: TunnelClosed | None = None
        self._done = asyncio.Event()
        self._goodbye_sent: asyncio.Future[None] | None = None

    # --- public ------------------------------------------------------------------------------

    def start(self) -> None:
        if self.role is Role.TECHNICIAN:
            self._write_ping()  # the first record: proves to the agent that we hold the key
        for coroutine in (self._read_loop(), self._write_loop(), self._keepalive_loop()):
            self._spawn(coroutine)

    async def established(self) -> None:
        """Returns once the peer proved it holds the session keys (agent side: its first
        record arrived and authenticated); raises TunnelClosed if the tunnel ended first."""
        await asyncio.shield(self._confirmed)

    async def open(self, service: str, params: dict[str, Any] | None = None) -> Stream:
        """Technician side: open a stream to ``service``; raises StreamRefused if the agent
        says no, TunnelClosed if the tunnel is gone."""
        if self.role is not Role.TECHNICIAN:
            raise RuntimeError("only the technician side opens streams")
        self._check_open()
        if len(self._streams) >= MAX_STREAMS:
            raise StreamRefused(StreamCode.TOO_MANY_STREAMS, by="local")
        self._last_stream_id += 1
        stream = self._add_stream(self._last_stream_id, service, params or {}, "opening")
        try:
            await self.write_data(frames.open_frame(stream.id, service, stream.params))
            await asyncio.shield(stream.opened)
        except asyncio.CancelledError:
            # Nobody will use the stream: tell the agent, and free its slot on both sides.
            await stream.close("abandoned")
            raise
        return stream

    async def accept_stream(self) -> tuple[StreamRequest, Stream]:
        """Agent side: the next stream the authorize callback allowed; raises TunnelClosed
        when the tunnel ends."""
        while True:
            if self.closed is not None:
                raise self.closed
            if self._incoming:
                return self._incoming.popleft()
            self._incoming_ready.clear()
            await self._incoming_ready.wait()

    async def close(self, code: int = CloseCode.NORMAL, reason: str = "") -> None:
        """End the tunnel: GOODBYE to the peer (best effort within close_timeout), every
        stream raises TunnelClosed, the transport closes. Idempotent."""
        if self.closed is None:
            self._mark_closed(TunnelClosed(code, reason, by="local"))
            goodbye = self._loop.create_future()
            self._goodbye_sent = goodbye
            goodbye_frame = frames.reason_frame(FrameType.GOODBYE, CONTROL_STREAM, code, reason)
            self._urgent.append(goodbye_frame)
            self._wake_writer.set()
            with contextlib.suppress(TimeoutError, TransportClosed, asyncio.CancelledError):
                async with asyncio.timeout(self._options.close_timeout):
                    await asyncio.shield(goodbye)
            await self._teardown()
        await self._done.wait()

    async def wait_closed(self) -> TunnelClosed:
        await self._done.wait()
        assert self.closed is not None
        return self.closed

    @property
    def streams(self) -> list[Stream]:
        return [s for s in self._streams.values() if s.id != CONTROL_STREAM]

    # --- StreamHost ----------------------------------------------------------------------------

    async def write_data(self, frame: Frame) -> None:
        self._check_open()
        sent = self._loop.create_future()
        self._data.append((frame.encode(), sent))
        self._wake_writer.set()
        await sent

    def write_urgent(self, frame: Frame) -> None:
        self._queue_urgent(frame)

    def _queue_urgent(self, item: Frame | _Pong) -> None:
        if self.closed is None:
            self._urgent.append(item)
            self._wake_writer.set()

    def forget(self, stream: Stream) -> None:
        self._streams.pop(stream.id, None)

    def count_payload(self, sent: int, received: int) -> None:
        self.stats.payload_sent += sent
        self.stats.payload_received += received

    # --- tasks ---------------------------------------------------------------------------------

    async def _read_loop(self) -> None:
        try:
            while True:
                record = await self._transport.recv()
                self.stats.records_received += 1
                self.stats.bytes_received += len(record)
                frame = frames.parse(self._opener.open(record))
                self._last_received = self._loop.time()
                if not self._confirmed.done():
                    if frame.type is not FrameType.PING:
                        raise ProtocolError("the technician's first record must be a PING")
                    self._confirmed.set_result(None)
                if frame.type is FrameType.GOODBYE:
                    code, text = frames.reason_of(frame.payload)
                    await self._fail(TunnelClosed(code, text, by="peer"))
                    return
                self._dispatch(frame)
        except TransportClosed:
            await self._fail(TunnelClosed(CloseCode.TRANSPORT_CLOSED, by="transport"))
        except RecordError as exc:
            log.warning("tunnel record failed: %s", exc)
            await self.close(CloseCode.RECORD_ERROR, str(exc))
        except ProtocolError as exc:
            log.warning("tunnel protocol error: %s", exc.detail)
            await self.close(exc.code, exc.detail)
        except Exception:
            log.exception("tunnel reader failed")
            await self.close(CloseCode.INTERNAL_ERROR)

    async def _write_loop(self) -> None:
        try:
            while True:
                while not self._urgent and not (self._data and self.closed is None):
                    self._wake_writer.clear()
                    await self._wake_writer.wait()
                sent: asyncio.Future[None] | None = None
                if self._urgent:
                    item = self._urgent.popleft()
                    if item is _PONG:
                        pong = Frame(FrameType.PONG, CONTROL_STREAM, self._pong_payload)
                        plaintext = pong.encode()
                    else:
                        plaintext = item.encode()
                        if item.type is FrameType.GOODBYE:
                            sent = self._goodbye_sent
                else:
                    plaintext, sent = self._data.popleft()
                    self._in_flight = sent
                record = self._sealer.seal(plaintext)
                await self._transport.send(record)
                self.stats.records_sent += 1
                self.stats.bytes_sent += len(record)
                if sent is not None and not sent.done():
                    sent.set_result(None)
                self._in_flight = None
        except TransportClosed:
            await self._fail(TunnelClosed(CloseCode.TRANSPORT_CLOSED, by="transport"))
        except Exception:
            # Nothing more can be sealed in order (e.g. the counter ran out): no GOODBYE.
            log.exception("tunnel writer failed")
            await self._fail(TunnelClosed(CloseCode.INTERNAL_ERROR, by="local"))

    async def _keepalive_loop(self) -> None:
        interval, timeout = self._options.ping_interval, self._options.ping_timeout
        tick = min(interval, timeout) / 4
        while True:
            await asyncio.sleep(tick)
            now = self._loop.time()
            idle = now - self._last_received
            if idle >= interval + timeout:
                await self.close(CloseCode.TIMEOUT, f"nothing received for {idle:.1f} s")
                return
            if idle >= interval and now - self._last_ping >= interval:
                self._write_ping()

    # --- frames --------------------------------------------------------------------------------

    def _dispatch(self, frame: Frame) -> None:
        kind = frame.type
        if kind is FrameType.PING:
            self._pong_payload = frame.payload
            if _PONG not in self._urgent:
                self._queue_urgent(_PONG)
            return
        if kind is FrameType.PONG:
            return  # liveness is any record; the payload needs no check
        if kind is FrameType.OPEN:
            self._on_open(frame)
            return
        stream = self._stream_for(frame)
        if stream is None:
            return  # a stream we closed; the peer had not yet seen our CLOSE
        if kind is FrameType.DATA:
            stream.on_data(frame.payload, bool(frame.flags & frames.FLAG_END))
        elif kind is FrameType.CREDIT:
            stream.on_credit(frames.credit_of(frame.payload))
        elif kind is FrameType.CLOSE:
            code, text = frames.reason_of(frame.payload)
            stream.on_peer_close(code, text)
        elif kind is FrameType.ACCEPT:
            if self.role is not Role.TECHNICIAN or stream.state != "opening":
                raise ProtocolError(f"unexpected ACCEPT on stream {frame.stream}")
            stream.on_accept()

    def _stream_for(self, frame: Frame) -> Stream | None:
        stream = self._streams.get(frame.stream)
        if stream is None and frame.stream > self._last_stream_id:
            raise ProtocolError(f"{frame.type.name} on stream {frame.stream}, never opened")
        return stream

    def _on_open(self, frame: Frame) -> None:
        if self.role is not Role.AGENT:
            raise ProtocolError("OPEN sent to the technician side")
        if frame.stream != self._last_stream_id + 1:
            expected = self._last_stream_id + 1
            raise ProtocolError(f"OPEN of stream {frame.stream}, expected {expected}")
        self._last_stream_id = frame.stream
        try:
            service, params = frames.open_request_of(frame.payload)
        except frames.BadOpenRequest as exc:
            stream = self._add_stream(frame.stream, "", {}, "pending")
            stream.refuse(StreamCode.BAD_REQUEST, str(exc))
            return
        stream = self._add_stream(frame.stream, service, params, "pending")
        if len(self._streams) > MAX_STREAMS:
            stream.refuse(StreamCode.TOO_MANY_STREAMS)
        elif service not in self._services:
            stream.refuse(StreamCode.UNKNOWN_SERVICE)
        else:
            request = StreamRequest(frame.stream, service, params, self.ticket)
            self._spawn(self._decide(request, stream))

    async def _decide(self, request: StreamRequest, stream: Stream) -> None:
        assert self._authorize is not None
        try:
            allowed = await self._authorize(request)
        except Exception:
            log.exception("authorize callback failed for %s", request.service)
            allowed = False
        if stream.state != "pending" or self.closed is not None:
            return  # the technician closed it, or the tunnel ended, while we decided
        if allowed is not True:
            stream.refuse(StreamCode.REFUSED)
            return
        stream.state = "open"
        self.write_urgent(Frame(FrameType.ACCEPT, stream.id))
        self._incoming.append((request, stream))
        self._incoming_ready.set()

    # --- lifecycle -----------------------------------------------------------------------------

    def _add_stream(
        self, stream_id: int, service: str, params: dict[str, Any], state: str
    ) -> Stream:
        stream = Stream(self, stream_id, service, params, state)
        self._streams[stream_id] = stream
        return stream

    def _check_open(self) -> None:
        if self.closed is not None:
            raise self.closed

    def _write_ping(self) -> None:
        self._last_ping = self._loop.time()
        self.write_urgent(Frame(FrameType.PING, CONTROL_STREAM, secrets.token_bytes(8)))

    def _spawn(self, coroutine: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _fail(self, exc: TunnelClosed) -> None:
        """The tunnel ended without us sending a GOODBYE (peer's GOODBYE, transport gone)."""
        if self.closed is None:
            self._mark_closed(exc)
            await self._teardown()
        await self._done.wait()

    def _mark_closed(self, exc: TunnelClosed) -> None:
        self.closed = exc
        for stream in list(self._streams.values()):
            stream.on_tunnel_closed(exc)
        self._streams.clear()
        self._urgent.clear()
        pending = [sent for _, sent in self._data]
        self._data.clear()
        if self._in_flight is not None:
            pending.append(self._in_flight)
        for sent in pending:
            if not sent.done():
                sent.set_exception(exc)
        if not self._confirmed.done():
            self._confirmed.set_exception(exc)
            self._confirmed.exception()  # retrieved: an unconfirmed tunnel may not be awaited
        self._incoming_ready.set()
        self._wake_writer.set()

    async def _teardown(self) -> None:
        current = asyncio.current_task()
        for task in list(self._tasks):
            if task is not current:
                task.cancel()
        await self._transport.close()
        self._done.set()
