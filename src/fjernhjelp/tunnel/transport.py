"""What the tunnel runs over: whole binary messages, in order (one record each).

In production that is a WebSocket to the relay (``WebSocketTransport``); in tests an
in-memory pair, which a test can splice a hostile relay into.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import Any, Protocol, TypeVar

_T = TypeVar("_T")


class TransportClosed(Exception):
    """The transport is gone; no more messages either way."""


class Transport(Protocol):
    async def send(self, message: bytes) -> None:
        """Send one binary message; raises TransportClosed."""
        ...

    async def recv(self) -> bytes:
        """The next binary message; raises TransportClosed."""
        ...

    async def close(self) -> None:
        """Close; idempotent, never raises."""
        ...


class WebSocketTransport:
    """A ``websockets`` (asyncio API) connection as a Transport, client or server side.

    A text message is a protocol violation: it ends the transport instead of being passed
    on, because the tunnel speaks only binary. Open the connection with
    ``max_size=limits.MAX_RECORD + 1024`` or more, and ``compression=None``: records are
    ciphertext and do not compress.
    """

    def __init__(self, websocket: Any) -> None:
        from websockets.exceptions import ConnectionClosed

        self._ws = websocket
        self._closed_errors: tuple[type[BaseException], ...] = (ConnectionClosed,)

    async def send(self, message: bytes) -> None:
        try:
            await self._ws.send(message)
        except self._closed_errors as exc:
            raise TransportClosed(str(exc)) from exc

    async def recv(self) -> bytes:
        try:
            message = await self._ws.recv()
        except self._closed_errors as exc:
            raise TransportClosed(str(exc)) from exc
        if not isinstance(message, bytes):
            await self.close()
            raise TransportClosed("text message on a binary tunnel")
        return message

    async def close(self) -> None:
        # Best effort by contract: the connection may already be gone.
        with contextlib.suppress(Exception):
            await self._ws.close()


class MemoryTransport:
    """One end of an in-memory transport pair. ``close`` ends both directions, as a
    WebSocket close does; messages already queued for the other end are still delivered
    to it before it sees the close."""

    def __init__(
        self, inbox: asyncio.Queue[bytes], peer_inbox: asyncio.Queue[bytes], closed: asyncio.Event
    ) -> None:
        self._inbox = inbox
        self._peer_inbox = peer_inbox
        self._pair_closed = closed
        self._closed_here = False

    async def send(self, message: bytes) -> None:
        if self._pair_closed.is_set():
            raise TransportClosed("closed")
        if not self._peer_inbox.full():
            self._peer_inbox.put_nowait(bytes(message))
            await asyncio.sleep(0)  # let the reader run, as a socket write would
            return
        await self._until_closed(self._peer_inbox.put(bytes(message)))

    async def recv(self) -> bytes:
        if self._closed_here:
            raise TransportClosed("closed")
        if not self._inbox.empty():
            return self._inbox.get_nowait()
        return await self._until_closed(self._inbox.get())

    async def close(self) -> None:
        self._closed_here = True
        self._pair_closed.set()

    async def _until_closed(self, operation: Coroutine[Any, Any, _T]) -> _T:
        if self._pair_closed.is_set():
            operation.close()
            raise TransportClosed("closed")
        task = asyncio.ensure_future(operation)
        closed = asyncio.ensure_future(self._pair_closed.wait())
        try:
            await asyncio.wait((task, closed), return_when=asyncio.FIRST_COMPLETED)
        finally:
            closed.cancel()
            if not task.done():
                task.cancel()
        if task.done() and not task.cancelled():
            return task.result()
        raise TransportClosed("closed")


def memory_transport_pair(maxsize: int = 16) -> tuple[MemoryTransport, MemoryTransport]:
    """Two connected ends; each direction holds at most ``maxsize`` messages (back-pressure)."""
    a_inbox: asyncio.Queue[bytes] = asyncio.Queue(maxsize)
    b_inbox: asyncio.Queue[bytes] = asyncio.Queue(maxsize)
    closed = asyncio.Event()
    return MemoryTransport(a_inbox, b_inbox, closed), MemoryTransport(b_inbox, a_inbox, closed)
