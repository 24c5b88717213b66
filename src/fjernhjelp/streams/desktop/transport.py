"""The byte stream an RFB session runs on, and adapters to what carries it.

RFB is a byte stream. The protocol code reads and writes through ``ByteStream`` and
does not know whether the bytes travel over TCP (a local VNC port, tests) or as a
sequence of messages on a tunnel ``Channel``.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Protocol

from fjernhjelp.tunnel.channel import Channel, ChannelClosed

# A tunnel message carries at most this many bytes of the RFB stream.
MAX_CHANNEL_MESSAGE = 64 * 1024


class StreamClosed(Exception):
    """The peer went away, or the stream was closed locally."""


class ByteStream(Protocol):
    async def read_exactly(self, n: int) -> bytes:
        """Exactly ``n`` bytes; raises StreamClosed if the stream ends first."""
        ...

    async def write(self, data: bytes) -> None:
        """Queue ``data`` in order, waiting while the peer is slow."""
        ...

    async def close(self) -> None: ...


class SocketStream:
    """``asyncio`` reader/writer pair (TCP, Unix sockets)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    async def read_exactly(self, n: int) -> bytes:
        try:
            return await self._reader.readexactly(n)
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            raise StreamClosed(str(exc)) from exc

    async def write(self, data: bytes) -> None:
        if self._writer.is_closing():
            raise StreamClosed("closed")
        try:
            self._writer.write(data)
            await self._writer.drain()
        except ConnectionError as exc:
            raise StreamClosed(str(exc)) from exc

    async def close(self) -> None:
        if not self._writer.is_closing():
            self._writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await self._writer.wait_closed()


class ChannelStream:
    """One RFB byte stream carried as a sequence of Channel messages.

    Message boundaries carry no meaning: a read may span messages and a large write is
    cut into pieces of at most ``MAX_CHANNEL_MESSAGE`` bytes.
    """

    def __init__(self, channel: Channel, max_message: int = MAX_CHANNEL_MESSAGE) -> None:
        self._channel = channel
        self._max = max_message
        self._buffer = bytearray()

    async def read_exactly(self, n: int) -> bytes:
        while len(self._buffer) < n:
            try:
                self._buffer += await self._channel.recv()
            except ChannelClosed as exc:
                raise StreamClosed(exc.reason) from exc
        data = bytes(self._buffer[:n])
        del self._buffer[:n]
        return data

    async def write(self, data: bytes) -> None:
        view = memoryview(data)
        try:
            for start in range(0, len(view), self._max):
                await self._channel.send(bytes(view[start : start + self._max]))
        except ChannelClosed as exc:
            raise StreamClosed(exc.reason) from exc

    async def close(self) -> None:
        with contextlib.suppress(ChannelClosed):
            await self._channel.close("desktop closed")
