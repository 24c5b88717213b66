"""One agent's control link on the lean agent listener (server/agent_listener.py): the
server side of RFC 6455 over an asyncio protocol of ours, with the methods of Starlette's
WebSocket that AgentHub's link uses once admitted (accept, receive, send_text, close), so
the hub has one login and one link for both listeners (AgentHub.serve_admitted).

Why our own rather than `websockets`' server, which served here before: a node's
CPU per agent (re)connect is what a restart storm costs, and `websockets` spent more on
its own machinery per connection (a connection object with its futures and locks, a
keepalive task pinging every idle link every 20 s, its sans-I/O parser's generators)
than the login's crypto does; bench/fleet.py measured the bare `websockets` server, with
no database at all, at about the issue's whole budget of 1 ms per connect. The control
link needs little of RFC 6455: small text messages both ways, a ping answered, a close
handshake. The frames are judged by server/wsframes.py, which the relay listener uses
too (fail closed: unmasked, RSV bits, unknown opcodes, long or fragmented control
frames, broken fragmentation, a malformed close: 1002; over the size limit: 1009;
a text message that is not UTF-8: 1007).

What a link costs while it idles: this object, its transport, and the hub's task
waiting in ``receive``. Nothing is timed per link: the listener's keepalive sweep
(agent_listener.py) pings a link that has been silent for ``IDLE`` (an agent pings every
30 s itself, agent/link.py, so a healthy agent is never pinged) and drops one that
stayed silent ``PING_TIMEOUT`` after that, and drops a connection whose upgrade request
has not come within ``REQUEST_TIMEOUT``.

Admission comes before the upgrade, answered in HTTP as on the main port: a node busy
with more logins than it answers in time says 503 and when to come back
(server/admission.py); a source address with too many sockets that have not proved
their key is refused 429, and the node with too many 503 (ws_guard.py), noted as probing.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections import deque
from typing import TYPE_CHECKING, Any, cast

from starlette.websockets import WebSocketDisconnect

from fjernhjelp.server import wsframes
from fjernhjelp.server.probes import Kind
from fjernhjelp.server.security import client_address
from fjernhjelp.server.transport_calls import TransportCalls, wake
from fjernhjelp.server.ws_guard import (
    PROTOCOL_MAX_MESSAGE,
    busy_response_headers,
    count_busy_refusal,
)
from fjernhjelp.server.wsframes import BINARY, CLOSE, PING, PONG, TEXT

if TYPE_CHECKING:
    from collections.abc import Callable

    from fjernhjelp.server.agent_hub import AgentHub

_log = logging.getLogger(__name__)

PATH = "/agent/control"
REQUEST_TIMEOUT = 10.0  # from the connection to its whole upgrade request
IDLE = 45.0  # silent this long, a link is pinged (the agent pings every 30 s)
PING_TIMEOUT = 20.0  # and dropped if still silent this long after
CLOSE_GRACE = 2.0  # after our close frame, how long the peer has to answer it
# How long a message of ours may wait for a peer that does not read: the hub's senders
# (a dial from the cluster bus, which serves one message at a time) wait no longer.
DRAIN_TIMEOUT = 10.0
# Messages read and not yet taken by the hub: beyond, the socket is not read until it
# takes them (an agent that floods its link waits in its own TCP window).
INBOX_MAX = 8

_NO_STATUS = 1005  # RFC 6455: a close frame without a code
_ABNORMAL = 1006  # RFC 6455: the connection ended without a close frame
_INVALID_DATA = 1007
_GOING_AWAY = 1001


class _Stage(enum.Enum):
    REQUEST = 1  # reading the HTTP upgrade request
    OPEN = 2  # upgraded: messages both ways
    CLOSING = 3  # a close frame was sent; waiting for the peer's, or the grace
    CLOSED = 4


class Links:
    """What a listener's connections share: the open ones (for the keepalive sweep and
    the node's stop) and the hub's handlers still running (a link's departure is
    written after its connection is gone; the node's stop waits for it)."""

    __slots__ = ("handlers", "sockets")

    def __init__(self) -> None:
        self.sockets: set[ControlSocket] = set()
        self.handlers: set[asyncio.Task[None]] = set()


class ControlSocket(TransportCalls, asyncio.Protocol):
    """One connection to the lean agent listener: upgrade, then a control link."""

    __slots__ = (
        "_buf",
        "_code",
        "_drain",
        "_frames",
        "_hub",
        "_inbox",
        "_kind",
        "_links",
        "_parts",
        "_paused_reading",
        "_paused_writing",
        "_source",
        "_stage",
        "_timer",
        "_transport",
        "_waiter",
        "heard",
        "pinged",
    )

    def __init__(self, hub: AgentHub, links: Links) -> None:
        self._hub = hub
        self._links = links
        self._transport: asyncio.Transport | None = None
        self._stage = _Stage.REQUEST
        self._buf = bytearray()
        self._frames = wsframes.FrameReader(PROTOCOL_MAX_MESSAGE)
        self._kind = TEXT  # the opcode of the message being reassembled
        # The fragments so far, joined as they come: a list of them cost an object each,
        # which the message's byte limit did not see (1.4 MB for a 64 KiB message sent
        # two bytes a fragment; empty fragments without end).
        self._parts = bytearray()
        self._inbox: deque[str | bytes] = deque()
        self._waiter: asyncio.Future[None] | None = None  # receive()'s
        self._drain: asyncio.Future[None] | None = None  # send_text()'s, while paused
        self._paused_reading = False
        self._paused_writing = False
        self._code: int | None = None  # how the link ended, for receive()
        self._timer: asyncio.TimerHandle | None = None
        self._source: str | None = None  # the client's address, proxies considered
        # When the peer last sent anything (before the upgrade: when it connected).
        self.heard = time.monotonic()
        self.pinged = False  # the keepalive sweep pinged it since

    # -- what AgentHub uses ------------------------------------------------------------

    async def accept(self) -> None:
        """Accepted by the upgrade already."""

    async def receive(self) -> dict[str, Any]:
        """The next message, as Starlette's ASGI message; what was read before the link
        ended is handed over first, then the disconnect with its close code."""
        while True:
            if self._inbox:
                message = self._inbox.popleft()
                if self._paused_reading and len(self._inbox) <= INBOX_MAX // 2:
                    self._paused_reading = False
                    if not self._paused_writing:
                        self._resume()
                if isinstance(message, str):
                    return {"type": "websocket.receive", "text": message}
                return {"type": "websocket.receive", "bytes": message}
            if self._code is not None:
                return {"type": "websocket.disconnect", "code": self._code}
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None

    async def send_text(self, text: str) -> None:
        if self._stage is not _Stage.OPEN:
            raise WebSocketDisconnect(self._code or _ABNORMAL)
        data = text.encode("utf-8")
        self._write(wsframes.header(0x80 | TEXT, len(data)) + data)
        while self._paused_writing and self._stage is _Stage.OPEN:
            self._drain = asyncio.get_running_loop().create_future()
            try:
                await asyncio.wait_for(self._drain, DRAIN_TIMEOUT)
            except TimeoutError:
                # A peer that has left this much unread for this long is not reading: its
                # sender (and everyone queued behind it on the link's lock, or on the
                # cluster bus) is not held for ever. Ended as a lost connection would be.
                self._abort()
                raise WebSocketDisconnect(_ABNORMAL) from None
            finally:
                self._drain = None

    async def close(self, code: int = 1000, reason: str | None = None) -> None:
        """Our close frame; the connection ends at the peer's answer or the grace."""
        self._close(code, reason or "")

    # -- asyncio's callbacks -----------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport (uvloop's is not an asyncio.Transport subclass).
        self._transport = cast(asyncio.Transport, transport)
        self._links.sockets.add(self)

    def data_received(self, data: bytes) -> None:
        stage = self._stage
        if stage is _Stage.CLOSED:
            return
        if stage is not _Stage.REQUEST:
            # The upgrade's time runs from the connection, not from its last byte: a
            # client that sends its request a byte at a time is dropped all the same.
            self.heard = time.monotonic()
            self.pinged = False
        self._buf += data
        if stage is _Stage.REQUEST:
            self._upgrade()
        else:
            self._read_frames()

    def eof_received(self) -> bool:
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self._stage = _Stage.CLOSED
        self._links.sockets.discard(self)
        if self._timer is not None:
            self._timer.cancel()
        if self._code is None:
            self._code = _ABNORMAL
        self._buf = bytearray()
        wake(self._waiter)
        wake(self._drain)

    def pause_writing(self) -> None:
        self._paused_writing = True
        # A peer that does not read what we write is not read either: each ping it sends
        # is answered with a pong, and a peer that pings without reading grew our write
        # buffer by what it sent, without bound. Now it waits in its own TCP window, its
        # link falls silent, and the keepalive sweep drops it.
        self._pause()

    def resume_writing(self) -> None:
        self._paused_writing = False
        if not self._paused_reading:  # else the hub's taking its messages resumes it
            self._resume()
        wake(self._drain)

    # -- the listener's keepalive sweep ------------------------------------------------

    def check(self, now: float) -> None:
        """Called every few seconds by the listener: ping a silent link, drop one that
        stayed silent after its ping or never finished its upgrade."""
        silent = now - self.heard
        if self._stage is _Stage.REQUEST:
            if silent > REQUEST_TIMEOUT:
                self._abort()
        elif self._stage is _Stage.OPEN:
            if self._inbox:
                # Its messages wait for the hub (the database slow, say), and it is not
                # read meanwhile: the silence is ours, not the peer's.
                self.heard, self.pinged = now, False
            elif self.pinged:
                if silent > IDLE + PING_TIMEOUT:
                    # As for a lost connection: the hub records the departure.
                    self._abort()
            elif silent > IDLE:
                self.pinged = True
                self._write(wsframes.header(0x80 | PING, 0))

    def going_away(self) -> None:
        """The node stops: 1001, as `websockets` and uvicorn say it."""
        if self._stage is _Stage.REQUEST:
            self._abort()
        else:
            self._close(_GOING_AWAY, "going away")

    # -- the upgrade -------------------------------------------------------------------

    def _upgrade(self) -> None:
        try:
            end = wsframes.request_end(self._buf)
            if end is None:
                return
            upgrade = wsframes.parse_control_upgrade(bytes(self._buf[:end]), PATH)
        except wsframes.UpgradeRefused as refused:
            self._http_refuse(refused.status, refused.extra)
            return
        del self._buf[:end]
        hub = self._hub
        # Before anything that costs: a node busy with a storm of logins tells the agent
        # when to come back (server/admission.py); the agent honours it.
        retry_after = hub.admission.refusal()
        if retry_after is not None:
            count_busy_refusal()
            extra = "".join(f"{k}: {v}\r\n" for k, v in busy_response_headers(retry_after).items())
            self._http_refuse("503 Service Unavailable", extra)
            return
        assert self._transport is not None
        peer = self._transport.get_extra_info("peername")
        self._source = source = client_address(
            peer[0] if peer else None, upgrade.forwarded_for, hub.settings
        )
        cap = hub.admit_pending(source)
        if cap is not None:
            self._http_refuse(cap.http_status, "Retry-After: 5\r\n")
            return
        self._write(wsframes.switching_protocols(upgrade.key))
        self._stage = _Stage.OPEN
        self.heard = time.monotonic()
        # The hub owns the socket's count against the caps from here (serve_admitted
        # releases it), whatever becomes of the connection.
        task = asyncio.get_running_loop().create_task(hub.serve_admitted(self, source))  # type: ignore[arg-type]
        self._links.handlers.add(task)
        task.add_done_callback(self._served)
        if self._buf:
            self._read_frames()

    def _served(self, task: asyncio.Task[None]) -> None:
        self._links.handlers.discard(task)
        if not task.cancelled() and task.exception() is not None:
            # serve_admitted handles every ending it knows of; this one is a bug. The
            # agent sees 1011 and comes back with its back-off.
            _log.error("control link handler failed", exc_info=task.exception())
            self._close(1011, "internal error")

    # -- frames ------------------------------------------------------------------------

    def _read_frames(self) -> None:
        buf = self._buf
        while self._stage is not _Stage.CLOSED:
            try:
                frame = self._frames.next(buf)
            except wsframes.FrameRefused as refused:
                if refused.code == wsframes.TOO_BIG:
                    # Sized from its header, never buffered; probing, as on the relay.
                    self._hub.note_probe(self._source, Kind.MESSAGE_TOO_BIG)
                self._fail(refused.code, refused.reason)
                return
            if frame is None:
                return
            first, payload = frame
            opcode = first & 0x0F
            if opcode <= BINARY:
                if self._stage is not _Stage.OPEN:
                    continue  # after our close frame, data is dropped
                if opcode:
                    self._kind = opcode
                if not first & 0x80:
                    self._parts += payload
                    continue
                if self._parts:
                    self._parts += payload
                    payload = bytes(self._parts)
                    self._parts = bytearray()
                self._deliver(payload)
            elif opcode == PING:
                if self._stage is _Stage.OPEN:
                    self._write(wsframes.header(0x80 | PONG, len(payload)) + payload)
            elif opcode == CLOSE:
                self._peer_closed(payload)
                return
            # A pong: the peer is alive, which data_received noted.

    def _deliver(self, payload: bytes) -> None:
        message: str | bytes = payload
        if self._kind == TEXT:
            try:
                message = payload.decode("utf-8")
            except UnicodeDecodeError:
                self._fail(_INVALID_DATA, "invalid_utf8")
                return
        self._inbox.append(message)
        if len(self._inbox) >= INBOX_MAX and not self._paused_reading:
            self._paused_reading = True
            self._pause()
        wake(self._waiter)

    def _peer_closed(self, payload: bytes) -> None:
        code = int.from_bytes(payload[:2], "big") if payload else _NO_STATUS
        if self._stage is _Stage.OPEN:
            # Answered with its own code (RFC 6455 section 5.5.1), none if it gave none.
            self._write(wsframes.header(0x80 | CLOSE, min(len(payload), 2)) + payload[:2])
        if self._code is None:
            self._code = code
        self._stage = _Stage.CLOSING
        assert self._transport is not None
        self._transport.close()  # both close frames are out: the server closes TCP
        if self._timer is None:
            # The close waits until our writes are flushed: a peer that closes and never
            # reads them held the connection (and what we had written) for ever, past the
            # sweep (which leaves a closing link alone) and the node's stop.
            self._timer = asyncio.get_running_loop().call_later(CLOSE_GRACE, self._abort)
        wake(self._waiter)
        wake(self._drain)

    # -- closing -----------------------------------------------------------------------

    def _close(self, code: int, reason: str) -> None:
        if self._stage is not _Stage.OPEN:
            return
        self._stage = _Stage.CLOSING
        self._code = code
        self._write(wsframes.close_frame(code, reason))
        self._resume()  # read on, for the peer's close frame
        self._timer = asyncio.get_running_loop().call_later(CLOSE_GRACE, self._abort)
        wake(self._waiter)
        wake(self._drain)

    def _fail(self, code: int, reason: str) -> None:
        """The peer broke the protocol: close with ``code``; its frames are not read."""
        if self._stage is _Stage.OPEN:
            self._close(code, reason)
        else:
            self._abort()

    def _http_refuse(self, status: str, extra: str = "") -> None:
        self._stage = _Stage.CLOSED
        self._write(wsframes.response(status, extra))
        assert self._transport is not None
        self._transport.close()

    def _abort(self) -> None:
        if self._transport is not None and self._stage is not _Stage.CLOSED:
            self._transport.abort()


def factory(hub: AgentHub, links: Links) -> Callable[[], ControlSocket]:
    return lambda: ControlSocket(hub, links)


__all__ = ["IDLE", "PATH", "PING_TIMEOUT", "REQUEST_TIMEOUT", "ControlSocket", "Links", "factory"]
