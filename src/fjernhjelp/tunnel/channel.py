"""The interface every service inside the tunnel is written against.

A channel is one numbered stream of the tunnel, already decrypted and in order. It
carries whole messages: what one side sends with ``send`` arrives as one ``recv`` on the
other side. Services (shell, files, desktop, chat) take a Channel and know nothing of
keys, framing or the relay, so they can be tested over an in-memory pair.
"""

from __future__ import annotations

import asyncio
from typing import Protocol, runtime_checkable


class ChannelClosed(Exception):
    """The stream ended: closed by either side, or the tunnel went down."""

    def __init__(self, reason: str = "closed") -> None:
        super().__init__(reason)
        self.reason = reason


@runtime_checkable
class Channel(Protocol):
    async def send(self, message: bytes) -> None:
        """Send one message. Waits when the peer is slow (back-pressure)."""
        ...

    async def recv(self) -> bytes:
        """The next message; raises ChannelClosed when the stream has ended."""
        ...

    async def close(self, reason: str = "closed") -> None:
        """End the stream in both directions; further sends raise ChannelClosed."""
        ...


class MemoryChannel:
    """One end of an in-memory channel pair, for tests and in-process wiring."""

    def __init__(
        self,
        inbox: asyncio.Queue[bytes | ChannelClosed],
        peer_inbox: asyncio.Queue[bytes | ChannelClosed],
    ) -> None:
        self._inbox = inbox
        self._peer_inbox = peer_inbox
        self._closed: ChannelClosed | None = None

    async def send(self, message: bytes) -> None:
        if self._closed is not None:
            raise self._closed
        await self._peer_inbox.put(bytes(message))

    async def recv(self) -> bytes:
        if self._closed is not None:
            raise self._closed
        item = await self._inbox.get()
        if isinstance(item, ChannelClosed):
            self._closed = item
            raise item
        return item

    async def close(self, reason: str = "closed") -> None:
        if self._closed is None:
            self._closed = ChannelClosed(reason)
            await self._peer_inbox.put(ChannelClosed(reason))


def memory_pair(maxsize: int = 64) -> tuple[MemoryChannel, MemoryChannel]:
    """Two connected channel ends; ``maxsize`` bounds each direction (back-pressure)."""
    a_inbox: asyncio.Queue[bytes | ChannelClosed] = asyncio.Queue(maxsize)
    b_inbox: asyncio.Queue[bytes | ChannelClosed] = asyncio.Queue(maxsize)
    return MemoryChannel(a_inbox, b_inbox), MemoryChannel(b_inbox, a_inbox)
