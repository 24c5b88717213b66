"""A tiny RFB 3.8 server for the desktop tests: security type None, a known framebuffer
sent with Raw encoding in whatever pixel format the client asks for, and a record of the
key, pointer and clipboard events it receives. It speaks over a tunnel Channel, the RFB
byte stream cut into messages of at most 64 KiB, as the agent's desktop service does."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from fjernhjelp.tunnel import Channel, ChannelClosed

CHUNK = 64 * 1024
# The four quadrants, in RGB: distinct values in every channel, so a swapped channel
# or a wrong shift shows.
COLOURS = ((200, 30, 40), (20, 180, 60), (30, 60, 220), (240, 200, 10))


class _Reader:
    def __init__(self, channel: Channel) -> None:
        self.channel = channel
        self.buffer = bytearray()

    async def read(self, size: int) -> bytes:
        while len(self.buffer) < size:
            self.buffer += await self.channel.recv()
        out = bytes(self.buffer[:size])
        del self.buffer[:size]
        return out


@dataclass
class PixelFormat:
    bpp: int = 32
    depth: int = 24
    big_endian: bool = False
    true_colour: bool = True
    maxima: tuple[int, int, int] = (255, 255, 255)
    shifts: tuple[int, int, int] = (16, 8, 0)

    def pack(self) -> bytes:
        return struct.pack(
            ">BBBBHHHBBBxxx",
            self.bpp,
            self.depth,
            self.big_endian,
            self.true_colour,
            *self.maxima,
            *self.shifts,
        )

    @classmethod
    def unpack(cls, data: bytes) -> PixelFormat:
        bpp, depth, big, true, rm, gm, bm, rs, gs, bs = struct.unpack(">BBBBHHHBBBxxx", data)
        return cls(bpp, depth, bool(big), bool(true), (rm, gm, bm), (rs, gs, bs))

    def encode(self, rgb: tuple[int, int, int]) -> bytes:
        assert self.bpp == 32 and self.true_colour, "the test server speaks 32 bpp true colour"
        value = 0
        for channel, maximum, shift in zip(rgb, self.maxima, self.shifts, strict=True):
            value |= (channel * maximum // 255) << shift
        return struct.pack(">I" if self.big_endian else "<I", value)


@dataclass
class RfbSource:
    width: int = 64
    height: int = 48
    name: str = "fjernhjelp test desktop"
    clipboard: str | None = None  # sent to the viewer after the first update
    keys: list[tuple[bool, int]] = field(default_factory=list)
    pointer: list[tuple[int, int, int]] = field(default_factory=list)
    cut_text: list[str] = field(default_factory=list)
    encodings: list[int] = field(default_factory=list)
    pixel_format: PixelFormat = field(default_factory=PixelFormat)
    client_version: bytes = b""
    updates_sent: int = 0
    ended: str | None = None

    def colour(self, x: int, y: int) -> tuple[int, int, int]:
        return COLOURS[(x >= self.width // 2) + 2 * (y >= self.height // 2)]

    async def serve(self, channel: Channel, request: object = None) -> None:
        try:
            await self._serve(channel)
        except ChannelClosed as exc:
            self.ended = exc.reason

    async def _serve(self, channel: Channel) -> None:
        reader = _Reader(channel)
        await channel.send(b"RFB 003.008\n")
        self.client_version = await reader.read(12)
        await channel.send(bytes([1, 1]))  # one security type: None
        assert await reader.read(1) == b"\x01"
        await channel.send(struct.pack(">I", 0))  # SecurityResult: OK
        await reader.read(1)  # ClientInit: shared flag
        name = self.name.encode()
        init = struct.pack(">HH", self.width, self.height) + self.pixel_format.pack()
        await channel.send(init + struct.pack(">I", len(name)) + name)
        while True:
            kind = (await reader.read(1))[0]
            if kind == 0:  # SetPixelFormat
                self.pixel_format = PixelFormat.unpack((await reader.read(19))[3:])
            elif kind == 2:  # SetEncodings
                (count,) = struct.unpack(">xH", await reader.read(3))
                raw = await reader.read(4 * count)
                self.encodings = list(struct.unpack(f">{count}i", raw))
            elif kind == 3:  # FramebufferUpdateRequest
                incremental, *_ = struct.unpack(">BHHHH", await reader.read(9))
                if not incremental:
                    await self._send_update(channel)
            elif kind == 4:  # KeyEvent
                down, keysym = struct.unpack(">BxxI", await reader.read(7))
                self.keys.append((bool(down), keysym))
            elif kind == 5:  # PointerEvent
                self.pointer.append(struct.unpack(">BHH", await reader.read(5)))
            elif kind == 6:  # ClientCutText
                (length,) = struct.unpack(">xxxI", await reader.read(7))
                self.cut_text.append((await reader.read(length)).decode("latin-1"))
            else:
                raise AssertionError(f"unexpected client message {kind}")

    async def _send_update(self, channel: Channel) -> None:
        pixels = b"".join(
            self.pixel_format.encode(self.colour(x, y))
            for y in range(self.height)
            for x in range(self.width)
        )
        header = struct.pack(">BxH", 0, 1) + struct.pack(">HHHHi", 0, 0, self.width, self.height, 0)
        update = header + pixels
        for offset in range(0, len(update), CHUNK):
            await channel.send(update[offset : offset + CHUNK])
        self.updates_sent += 1
        if self.updates_sent == 1 and self.clipboard is not None:
            text = self.clipboard.encode("latin-1")
            await channel.send(struct.pack(">BxxxI", 3, len(text)) + text)
