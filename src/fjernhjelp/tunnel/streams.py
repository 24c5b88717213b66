"""One numbered stream of a tunnel, as a Channel (docs/tunnel.md, "Streams").

A stream turns messages into DATA fragments and back, and keeps the credit accounts of
both directions: the sender never has more unacknowledged bytes in flight than the
peer's window, and the receiver refuses a peer that exceeds it. So a stream whose reader
is slow holds at most one window of memory, and a busy stream cannot starve the others
(fragments of different streams interleave record by record).
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from typing import Any, Protocol

from fjernhjelp.tunnel import frames
from fjernhjelp.tunnel.channel import ChannelClosed
from fjernhjelp.tunnel.codes import CloseCode, StreamCode
from fjernhjelp.tunnel.errors import (
    MessageTooLarge,
    ProtocolError,
    StreamClosed,
    StreamRefused,
    stream_code_for,
)
from fjernhjelp.tunnel.limits import (
    CREDIT_THRESHOLD,
    FRAME_COST,
    INITIAL_WINDOW,
    MAX_FRAGMENT,
    MAX_MESSAGE,
)


def decode_json(message: bytes) -> Any:
    """One message as JSON; ValueError if it is not. A message nested deeper than the
    interpreter's recursion limit is "not JSON" too: the peer chose the depth, and a
    RecursionError would escape every handler that expects ValueError."""
    try:
        return json.loads(message.decode("utf-8"))
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


class StreamHost(Protocol):
    """What a stream needs from its tunnel."""

    async def write_data(self, frame: frames.Frame) -> None: ...
    def write_urgent(self, frame: frames.Frame) -> None: ...
    def forget(self, stream: Stream) -> None: ...
    async def close(self, code: int = CloseCode.NORMAL, reason: str = "") -> None: ...
    def count_payload(self, sent: int, received: int) -> None: ...


class Stream:
    """A Channel over one stream id. States: opening (technician, OPEN sent), pending
    (agent, deciding), open, closed."""

    def __init__(
        self,
        host: StreamHost,
        stream_id: int,
        service: str,
        params: dict[str, Any],
        state: str,
    ) -> None:
        self._host = host
        self.id = stream_id
        self.service = service
        self.params = params
        self.state = state
        self.bytes_sent = 0  # message payload bytes
        self.bytes_received = 0
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._closed: ChannelClosed | None = None
        self._drop_buffered = False
        # Sending: credit the peer has granted, and one message at a time.
        self._send_window = INITIAL_WINDOW
        self._window_grew = asyncio.Event()
        self._send_lock = asyncio.Lock()
        # Receiving: what the peer may still send, the message being reassembled, whole
        # messages waiting for recv(), and consumed bytes not yet credited back.
        self._recv_window = INITIAL_WINDOW
        self._fragments: list[bytes] = []
        self._partial_size = 0
        self._partial_cost = 0
        self._inbox: deque[tuple[bytes, int]] = deque()
        self._readable = asyncio.Event()
        self._owed = 0

    def __repr__(self) -> str:
        return f"<Stream {self.id} {self.service} {self.state}>"

    # --- Channel --------------------------------------------------------------------------

    async def send(self, message: bytes) -> None:
        message = bytes(message)
        if len(message) > MAX_MESSAGE:
            raise MessageTooLarge(len(message), MAX_MESSAGE)
        async with self._send_lock:
            self._check_sendable()
            offset, queued_end = 0, False
            try:
                while not queued_end:
                    chunk = message[offset : offset + MAX_FRAGMENT]
                    end = offset + len(chunk) >= len(message)
                    cost = len(chunk) + FRAME_COST
                    while self._send_window < cost:
                        self._window_grew.clear()
                        await self._window_grew.wait()
                        self._check_sendable()
                    self._send_window -= cost
                    offset += len(chunk)
                    queued_end = end
                    await self._host.write_data(frames.data_frame(self.id, chunk, end))
            except asyncio.CancelledError:
                if offset and not queued_end:
                    # Half a message is out: the next one would be glued to it. End the
                    # stream instead of corrupting it.
                    self._close_locally(StreamCode.ERROR, "send cancelled mid-message")
                raise
        self.bytes_sent += len(message)
        self._host.count_payload(len(message), 0)

    async def recv(self) -> bytes:
        while True:
            if self._inbox and not self._drop_buffered:
                message, cost = self._inbox.popleft()
                self.bytes_received += len(message)
                self._host.count_payload(0, len(message))
                self._consumed(cost)
                return message
            if self._closed is not None:
                raise self._closed
            self._readable.clear()
            await self._readable.wait()

    async def close(self, reason: str = "closed") -> None:
        if self.id == frames.CONTROL_STREAM:
            # The control stream lives as long as the tunnel; closing it ends the tunnel.
            await self._host.close(CloseCode.NORMAL, reason if reason != "closed" else "")
            return
        if self._closed is None:
            self._close_locally(stream_code_for(reason), reason)

    async def send_json(self, value: Any) -> None:
        await self.send(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())

    async def recv_json(self) -> Any:
        """The next message as JSON; ValueError if it is not."""
        return decode_json(await self.recv())

    @property
    def closed(self) -> ChannelClosed | None:
        return self._closed

    @property
    def buffered(self) -> int:
        """Received bytes not yet taken by recv(), whole or partial: never more than one
        window, however slow the reader."""
        return sum(len(m) for m, _ in self._inbox) + self._partial_size

    # --- called by the tunnel ---------------------------------------------------------------

    def on_data(self, payload: bytes, end: bool) -> None:
        if self.state == "closed":
            return  # in flight when we closed; the peer will see our CLOSE
        if self.state != "open":
            raise ProtocolError(f"DATA on stream {self.id} before it was accepted")
        cost = len(payload) + FRAME_COST
        if cost > self._recv_window:
            raise ProtocolError(f"stream {self.id} exceeded its window", CloseCode.FLOW_CONTROL)
        self._recv_window -= cost
        self._partial_size += len(payload)
        if self._partial_size > MAX_MESSAGE:
            raise ProtocolError(
                f"message on stream {self.id} exceeds {MAX_MESSAGE} bytes",
                CloseCode.MESSAGE_TOO_LARGE,
            )
        self._fragments.append(payload)
        self._partial_cost += cost
        if end:
            message = b"".join(self._fragments)
            self._inbox.append((message, self._partial_cost))
            self._fragments, self._partial_size, self._partial_cost = [], 0, 0
            self._readable.set()

    def on_credit(self, amount: int) -> None:
        if self.state == "closed":
            return
        if self.state != "open":
            raise ProtocolError(f"CREDIT on stream {self.id} before it was accepted")
        if self._send_window + amount > INITIAL_WINDOW:
            raise ProtocolError(f"CREDIT beyond the window on stream {self.id}")
        self._send_window += amount
        self._window_grew.set()

    def on_accept(self) -> None:
        self.state = "open"
        if not self.opened.done():
            self.opened.set_result(None)

    def on_peer_close(self, code: int, text: str) -> None:
        if self.state == "closed":
            return
        kind = StreamRefused if self.state == "opening" else StreamClosed
        self._end(kind(code, text, by="peer"))
        self._host.forget(self)

    def refuse(self, code: StreamCode, reason: str = "") -> None:
        """Agent side: answer a pending OPEN with CLOSE instead of ACCEPT."""
        self._close_locally(code, reason or code.slug)

    def on_tunnel_closed(self, exc: ChannelClosed) -> None:
        # Whole messages already received were authenticated and stay readable; the
        # half-reassembled one is dropped.
        self._end(exc)

    # --- internals --------------------------------------------------------------------------

    def _check_sendable(self) -> None:
        if self._closed is not None:
            raise self._closed
        if self.state != "open":
            raise RuntimeError(f"send on a stream in state {self.state}")

    def _close_locally(self, code: StreamCode, reason: str) -> None:
        was = self.state
        self._end(StreamClosed(code, reason, by="local"))
        self._drop_buffered = True
        if was in ("open", "pending", "opening"):
            close = frames.reason_frame(frames.FrameType.CLOSE, self.id, code, reason)
            self._host.write_urgent(close)
        self._host.forget(self)

    def _end(self, exc: ChannelClosed) -> None:
        if self._closed is None:
            self._closed = exc
        self.state = "closed"
        self._fragments, self._partial_size, self._partial_cost = [], 0, 0
        self._readable.set()
        self._window_grew.set()
        if not self.opened.done():
            self.opened.set_exception(exc)
            self.opened.exception()  # retrieved here: a refused open may never be awaited

    def _consumed(self, cost: int) -> None:
        self._owed += cost
        if self._owed >= CREDIT_THRESHOLD and self.state == "open":
            self._recv_window += self._owed
            self._host.write_urgent(frames.credit_frame(self.id, self._owed))
            self._owed = 0
