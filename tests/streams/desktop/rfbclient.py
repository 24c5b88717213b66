"""A minimal RFB client for protocol-level tests: handshakes, raw bytes, Raw decoding.

Only Raw and pseudo-encodings are decoded here (Raw is trivial and so an independent
check); Tight, ZRLE and CopyRect are checked by noVNC and vncdotool.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from dataclasses import dataclass

import numpy as np


@dataclass
class Rect:
    x: int
    y: int
    w: int
    h: int
    encoding: int
    payload: bytes


class RfbClient:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.width = 0
        self.height = 0
        self.bpp = 32
        self.name = ""
        # Every ServerCutText seen so far: (extended, flags or None, data after the flags).
        self.cuts: list[tuple[bool, int | None, bytes]] = []

    @classmethod
    async def connect(cls, port: int) -> RfbClient:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def handshake(self, version: bytes = b"RFB 003.008\n") -> None:
        assert await self.reader.readexactly(12) == b"RFB 003.008\n"
        self.writer.write(version)
        if version == b"RFB 003.003\n":
            assert struct.unpack(">I", await self.reader.readexactly(4))[0] == 1
        else:
            (count,) = await self.reader.readexactly(1)
            types = await self.reader.readexactly(count)
            assert types == b"\x01"
            self.writer.write(b"\x01")
            if version == b"RFB 003.008\n":
                assert await self.reader.readexactly(4) == b"\0\0\0\0"
        self.writer.write(b"\x01")  # shared
        self.width, self.height = struct.unpack(">HH", await self.reader.readexactly(4))
        await self.reader.readexactly(16)
        (length,) = struct.unpack(">I", await self.reader.readexactly(4))
        self.name = (await self.reader.readexactly(length)).decode()

    def set_encodings(self, encodings: list[int]) -> None:
        self.writer.write(struct.pack(f">BxH{len(encodings)}i", 2, len(encodings), *encodings))

    def set_pixel_format(
        self,
        bpp: int,
        depth: int,
        big: bool,
        maxes: tuple[int, int, int],
        shifts: tuple[int, int, int],
        true_colour: bool = True,
    ) -> None:
        self.bpp = bpp
        self.writer.write(
            struct.pack(">B3xBBBBHHHBBB3x", 0, bpp, depth, big, true_colour, *maxes, *shifts)
        )

    def request(
        self, incremental: bool, x: int = 0, y: int = 0, w: int | None = None, h: int | None = None
    ) -> None:
        w = self.width if w is None else w
        h = self.height if h is None else h
        self.writer.write(struct.pack(">BBHHHH", 3, incremental, x, y, w, h))

    def key(self, down: bool, keysym: int) -> None:
        self.writer.write(struct.pack(">BB2xI", 4, down, keysym))

    def pointer(self, buttons: int, x: int, y: int) -> None:
        self.writer.write(struct.pack(">BBHH", 5, buttons, x, y))

    async def read_update(self) -> list[Rect]:
        """The next FramebufferUpdate (skipping cut text), Raw and cursor payloads read."""
        while True:
            (kind,) = await self.reader.readexactly(1)
            if kind == 3:
                await self._read_cut()
                continue
            assert kind == 0, f"unexpected server message {kind}"
            break
        (count,) = struct.unpack(">xH", await self.reader.readexactly(3))
        rects = []
        bytes_pp = self.bpp // 8
        for _ in range(count):
            x, y, w, h, enc = struct.unpack(">HHHHi", await self.reader.readexactly(12))
            if enc == 0:
                payload = await self.reader.readexactly(w * h * bytes_pp)
            elif enc == -239:
                payload = await self.reader.readexactly(w * h * bytes_pp + (w + 7) // 8 * h)
            elif enc == -308:
                head = await self.reader.readexactly(4)
                payload = head + await self.reader.readexactly(16 * head[0])
            elif enc == -223:
                payload = b""
            else:
                raise AssertionError(f"this test client does not decode encoding {enc}")
            rects.append(Rect(x, y, w, h, enc, payload))
        return rects

    async def _read_cut(self) -> None:
        (length,) = struct.unpack(">3xi", await self.reader.readexactly(7))
        data = await self.reader.readexactly(abs(length))
        if length < 0:
            self.cuts.append((True, struct.unpack(">I", data[:4])[0], data[4:]))
        else:
            self.cuts.append((False, None, data))

    async def next_cut(self) -> tuple[bool, int | None, bytes]:
        """The next ServerCutText (plain or extended), reading updates on the way."""
        seen = len(self.cuts)
        while len(self.cuts) == seen:
            (kind,) = await self.reader.readexactly(1)
            if kind == 3:
                await self._read_cut()
            else:
                assert kind == 0, f"unexpected server message {kind}"
                await self._skip_update()
        return self.cuts[seen]

    async def _skip_update(self) -> None:
        # The rest of a FramebufferUpdate this client did not ask to decode.
        (count,) = struct.unpack(">xH", await self.reader.readexactly(3))
        for _ in range(count):
            _x, _y, w, h, enc = struct.unpack(">HHHHi", await self.reader.readexactly(12))
            assert enc == 0, "next_cut reads Raw updates only"
            await self.reader.readexactly(w * h * self.bpp // 8)

    def cut_text(self, text: str) -> None:
        """A plain (Latin-1) ClientCutText."""
        data = text.encode("latin-1")
        self.writer.write(struct.pack(">B3xI", 6, len(data)) + data)

    def extended_cut(self, flags: int, body: bytes = b"") -> None:
        """An extended-clipboard ClientCutText: negative length, flags, body."""
        data = struct.pack(">I", flags) + body
        self.writer.write(struct.pack(">B3xi", 6, -len(data)) + data)

    async def closed_by_server(self, within: float = 10) -> bool:
        """True when the server closes the connection (EOF), reading anything before it."""
        try:
            async with asyncio.timeout(within):
                while await self.reader.read(65536):
                    pass
        except TimeoutError:
            return False
        except ConnectionError:
            return True
        return True

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()


def raw_pixels(rect: Rect, dtype: str) -> np.ndarray:
    return np.frombuffer(rect.payload, dtype).reshape(rect.h, rect.w)
