"""A measuring RFB client: keeps one update request outstanding and parses every
update far enough to know its size, without decoding pixels.

Used to read our agent and x11vnc with the same encodings, so their figures compare.
Parses Raw, CopyRect, Tight (all filters, JPEG), ZRLE and the pseudo-encodings asked
for; anything else is an error.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
import time
from dataclasses import dataclass, field

# What noVNC asks for, minus what only one of the servers would use.
ENCODINGS = [1, 7, 16, 0, -26, -254, -239, -223, -224]
RGBX = struct.pack(">BBBBHHHBBB3x", 32, 24, 0, 1, 255, 255, 255, 0, 8, 16)


@dataclass
class Update:
    received: float  # monotonic time the whole update had arrived
    size: int
    rects: list[tuple[int, int, int, int, int]]  # x, y, w, h, encoding


@dataclass
class Probe:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    width: int = 0
    height: int = 0
    updates: list[Update] = field(default_factory=list)
    _new_update: asyncio.Event = field(default_factory=asyncio.Event)

    @classmethod
    async def connect(cls, port: int, encodings: list[int] = ENCODINGS) -> Probe:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        probe = cls(reader, writer)
        await probe._handshake(encodings)
        return probe

    async def _handshake(self, encodings: list[int]) -> None:
        version = await self.reader.readexactly(12)
        assert version.startswith(b"RFB 003.")
        self.writer.write(b"RFB 003.008\n")
        (count,) = await self.reader.readexactly(1)
        types = await self.reader.readexactly(count)
        assert 1 in types, f"server offers no security type None: {types!r}"
        self.writer.write(b"\x01")
        assert await self.reader.readexactly(4) == b"\0\0\0\0"
        self.writer.write(b"\x01")
        self.width, self.height = struct.unpack(">HH", await self.reader.readexactly(4))
        await self.reader.readexactly(16)
        (n,) = struct.unpack(">I", await self.reader.readexactly(4))
        await self.reader.readexactly(n)
        self.writer.write(b"\x00\0\0\0" + RGBX)
        self.writer.write(struct.pack(f">BxH{len(encodings)}i", 2, len(encodings), *encodings))

    def request(self, incremental: bool = True) -> None:
        self.writer.write(struct.pack(">BBHHHH", 3, incremental, 0, 0, self.width, self.height))

    def key(self, keysym: int) -> None:
        self.writer.write(struct.pack(">BB2xI", 4, 1, keysym) + struct.pack(">BB2xI", 4, 0, keysym))

    async def run(self) -> None:
        """Read forever, asking for the next update as soon as one has arrived."""
        self.request(False)
        while True:
            (kind,) = await self.reader.readexactly(1)
            if kind == 0:
                update = await self._update()
                self.updates.append(update)
                self._new_update.set()
                self.request(True)
            elif kind == 2:
                pass  # bell
            elif kind == 3:
                (n,) = struct.unpack(">3xI", await self.reader.readexactly(7))
                await self.reader.readexactly(n)
            else:
                raise ValueError(f"unexpected server message {kind}")

    async def next_update(self) -> Update:
        self._new_update.clear()
        await self._new_update.wait()
        return self.updates[-1]

    async def _read(self, n: int) -> bytes:
        return await self.reader.readexactly(n)

    async def _update(self) -> Update:
        size = 4
        (count,) = struct.unpack(">xH", await self._read(3))
        rects = []
        while count:
            count -= 1
            x, y, w, h, enc = struct.unpack(">HHHHi", await self._read(12))
            size += 12
            if enc == -224:  # LastRect
                break
            size += await self._skip_rect(w, h, enc)
            rects.append((x, y, w, h, enc))
        return Update(time.monotonic(), size, rects)

    async def _compact(self) -> tuple[int, int]:
        length, used = 0, 0
        for i in range(3):
            (byte,) = await self._read(1)
            used += 1
            length |= (byte & 0x7F if i < 2 else byte) << (7 * i)
            if i < 2 and not byte & 0x80:
                break
        return length, used

    async def _skip_rect(self, w: int, h: int, enc: int) -> int:
        if enc == 0:
            return len(await self._read(w * h * 4))
        if enc == 1:
            return len(await self._read(4))
        if enc == 16:
            (n,) = struct.unpack(">I", await self._read(4))
            return 4 + len(await self._read(n))
        if enc == -239:
            return len(await self._read(w * h * 4 + (w + 7) // 8 * h))
        if enc == -223:
            return 0
        if enc == 7:
            return await self._skip_tight(w, h)
        raise ValueError(f"unexpected encoding {enc}")

    async def _skip_tight(self, w: int, h: int) -> int:
        (control,) = await self._read(1)
        kind = control >> 4
        if kind == 0x8:  # fill
            return 1 + len(await self._read(3))
        if kind == 0x9:  # JPEG
            length, used = await self._compact()
            return 1 + used + len(await self._read(length))
        if kind & 0x8:
            raise ValueError(f"bad Tight control {control:#x}")
        size = 1
        raw_size = w * h * 3
        if kind & 0x4:
            (filter_id,) = await self._read(1)
            size += 1
            if filter_id == 1:
                (n,) = await self._read(1)
                colours = n + 1
                size += 1 + len(await self._read(colours * 3))
                raw_size = (w + 7) // 8 * h if colours == 2 else w * h
        if raw_size < 12:
            return size + len(await self._read(raw_size))
        length, used = await self._compact()
        return size + used + len(await self._read(length))

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()
