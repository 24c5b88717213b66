"""The RFB protocol against a real Xvfb: handshakes, pixel formats, pseudo-encodings,
a still screen, and malformed input closing the session cleanly."""

from __future__ import annotations

import asyncio
import struct

import numpy as np
import pytest
from Xlib import display as xdisplay

from tests.desktop.agent import AgentPort
from tests.desktop.xvfb import Xvfb, xvfb
from tests.streams.desktop.rfbclient import RfbClient, raw_pixels

pytestmark = pytest.mark.desktop


def paint(server: Xvfb, colour: int, x: int, y: int, w: int, h: int) -> None:
    """Draw straight onto the root window (no window manager, so it shows)."""
    d = xdisplay.Display(server.display)
    root = d.screen().root
    gc = root.create_gc(foreground=colour)
    root.fill_rectangle(gc, x, y, w, h)
    d.sync()
    d.close()


def full_raw(client: RfbClient) -> None:
    client.set_encodings([0])
    client.request(False)


@pytest.mark.parametrize("version", [b"RFB 003.008\n", b"RFB 003.007\n", b"RFB 003.003\n"])
def test_handshake_and_raw_frame_match_the_screen(agent, xserver: Xvfb, version: bytes) -> None:
    paint(xserver, 0x3366CC, 500, 300, 200, 100)

    async def run() -> tuple[RfbClient, list]:
        client = await RfbClient.connect(agent.port)
        await client.handshake(version)
        full_raw(client)
        rects = await client.read_update()
        await client.close()
        return client, rects

    client, rects = agent.run(run())
    assert (client.width, client.height) == (xserver.width, xserver.height)
    assert client.name == "fjernhjelp"
    raw = [r for r in rects if r.encoding == 0]
    assert [(r.x, r.y, r.w, r.h) for r in raw] == [(0, 0, xserver.width, xserver.height)]
    pixels = raw_pixels(raw[0], "<u4")  # the native format: 0x00RRGGBB little-endian
    rgb = np.stack([(pixels >> 16) & 255, (pixels >> 8) & 255, pixels & 255], axis=-1)
    assert np.array_equal(rgb.astype(np.uint8), xserver.screen())


@pytest.mark.parametrize(
    ("bpp", "depth", "big", "maxes", "shifts", "dtype"),
    [
        (32, 24, False, (255, 255, 255), (0, 8, 16), "<u4"),  # what noVNC sends
        (32, 24, True, (255, 255, 255), (16, 8, 0), ">u4"),
        (16, 16, False, (31, 63, 31), (11, 5, 0), "<u2"),  # RGB565
        (16, 16, True, (31, 63, 31), (11, 5, 0), ">u2"),
        (16, 15, False, (31, 31, 31), (10, 5, 0), "<u2"),  # RGB555
        (8, 8, False, (7, 7, 3), (0, 3, 6), "u1"),  # BGR233
    ],
)
def test_client_pixel_formats_are_honoured(
    agent, xserver: Xvfb, bpp, depth, big, maxes, shifts, dtype
) -> None:
    paint(xserver, 0xF0A020, 100, 500, 300, 200)

    async def run() -> list:
        client = await RfbClient.connect(agent.port)
        await client.handshake()
        client.set_pixel_format(bpp, depth, big, maxes, shifts)
        full_raw(client)
        rects = await client.read_update()
        await client.close()
        return rects

    rects = agent.run(run())
    (rect,) = [r for r in rects if r.encoding == 0]
    value = raw_pixels(rect, dtype).astype(np.uint32)
    screen = xserver.screen().astype(np.uint32)
    for channel, (top, shift) in enumerate(zip(maxes, shifts, strict=True)):
        got = (value >> shift) & top
        expected = (screen[:, :, channel] * top + 127) // 255
        assert np.array_equal(got, expected), f"channel {channel}"


def test_still_screen_sends_nothing_and_a_change_sends_only_its_tiles(agent, xserver: Xvfb) -> None:
    paint(xserver, 0x000000, 0, 0, xserver.width, xserver.height)

    async def run() -> tuple[bool, list]:
        client = await RfbClient.connect(agent.port)
        await client.handshake()
        full_raw(client)
        await client.read_update()
        client.request(True)
        try:
            async with asyncio.timeout(1.5):
                data = await client.reader.read(1)
        except TimeoutError:
            data = b""
        quiet = data == b""
        await asyncio.to_thread(paint, xserver, 0xFFFFFF, 650, 330, 10, 10)
        rects = await client.read_update()
        await client.close()
        return quiet, rects

    quiet, rects = agent.run(run())
    assert quiet, "an incremental request on a still screen must not be answered"
    raw = [r for r in rects if r.encoding == 0]
    # 650..660 x 330..340 lies in tile column 10, tile row 5 (64-pixel tiles).
    assert [(r.x, r.y, r.w, r.h) for r in raw] == [(640, 320, 64, 64)]


def test_cursor_shape_is_sent_with_its_mask(agent, xserver: Xvfb) -> None:
    async def run() -> list:
        client = await RfbClient.connect(agent.port)
        await client.handshake()
        client.set_encodings([0, -239])
        client.request(False)
        rects = await client.read_update()
        await client.close()
        return rects

    rects = agent.run(run())
    (cursor,) = [r for r in rects if r.encoding == -239]
    assert cursor.w > 0 and cursor.h > 0
    mask = cursor.payload[cursor.w * cursor.h * 4 :]
    assert len(mask) == (cursor.w + 7) // 8 * cursor.h
    assert any(mask), "the X cursor has visible pixels"


def test_extended_desktop_size_is_announced_and_a_resize_request_refused(
    agent, xserver: Xvfb
) -> None:
    async def run() -> tuple[list, list]:
        client = await RfbClient.connect(agent.port)
        await client.handshake()
        client.set_encodings([0, -308])
        client.request(False)
        first = await client.read_update()
        # SetDesktopSize: 640x480, one screen.
        client.writer.write(struct.pack(">BxHHBx", 251, 640, 480, 1))
        client.writer.write(struct.pack(">IHHHHI", 0, 0, 0, 640, 480, 0))
        client.request(False, 0, 0, 16, 16)
        second = await client.read_update()
        await client.close()
        return first, second

    first, second = agent.run(run())
    (announce,) = [r for r in first if r.encoding == -308]
    assert (announce.x, announce.y, announce.w, announce.h) == (0, 0, 1280, 800)
    assert announce.payload[0] == 1  # one screen
    (reply,) = [r for r in second if r.encoding == -308]
    assert (reply.x, reply.y) == (1, 1)  # reason: client request; status: prohibited
    assert (reply.w, reply.h) == (1280, 800)  # the screen keeps its size


@pytest.mark.parametrize("encoding", [-223, -308])
def test_a_screen_size_change_is_announced_and_the_new_screen_sent(encoding: int) -> None:
    with xvfb(1280, 800) as server:
        port = AgentPort(server.display, view_only=False)
        try:
            paint(server, 0x2288DD, 900, 600, 300, 150)

            async def run() -> list:
                client = await RfbClient.connect(port.port)
                await client.handshake()
                client.set_encodings([0, encoding])
                client.request(False)
                await client.read_update()
                await asyncio.to_thread(server.resize, 1024, 768)
                client.request(True)
                rects = await client.read_update()
                await client.close()
                return rects

            rects = port.run(run())
        finally:
            port.close()
        size = [r for r in rects if r.encoding == encoding]
        assert [(r.w, r.h) for r in size] == [(1024, 768)]
        (raw,) = [r for r in rects if r.encoding == 0]
        assert (raw.x, raw.y, raw.w, raw.h) == (0, 0, 1024, 768)
        pixels = raw_pixels(raw, "<u4")
        rgb = np.stack([(pixels >> 16) & 255, (pixels >> 8) & 255, pixels & 255], axis=-1)
        assert np.array_equal(rgb.astype(np.uint8), server.screen())


MALFORMED = {
    "bad version": (b"HELLO WORLD!", False),
    "unknown version": (b"RFB 004.001\n", False),
    "unknown message type": (b"\x63", True),
    "oversized cut text": (struct.pack(">B3xI", 6, 0x7FFFFFFF), True),
    # A whole extended-clipboard message (notify), but the agent never announced it.
    "negative cut text without extended clipboard": (
        struct.pack(">B3xiI", 6, -4, 1 << 27 | 1),
        True,
    ),
    "colour-map pixel format": (
        struct.pack(">B3xBBBBHHHBBB3x", 0, 8, 8, 0, 0, 7, 7, 3, 0, 3, 6),
        True,
    ),
    "24 bits per pixel": (
        struct.pack(">B3xBBBBHHHBBB3x", 0, 24, 24, 0, 1, 255, 255, 255, 16, 8, 0),
        True,
    ),
    "max not a power of two minus one": (
        struct.pack(">B3xBBBBHHHBBB3x", 0, 32, 24, 0, 1, 1000, 255, 255, 16, 8, 0),
        True,
    ),
    "channels outside the pixel": (
        struct.pack(">B3xBBBBHHHBBB3x", 0, 16, 16, 0, 1, 255, 255, 255, 16, 8, 0),
        True,
    ),
    "too many encodings": (struct.pack(">BxH", 2, 60000), True),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_client_input_closes_cleanly_and_the_port_still_serves(
    agent, xserver: Xvfb, case: str
) -> None:
    data, after_handshake = MALFORMED[case]

    async def run() -> tuple[bool, int]:
        client = await RfbClient.connect(agent.port)
        if after_handshake:
            await client.handshake()
        else:
            assert await client.reader.readexactly(12) == b"RFB 003.008\n"
        client.writer.write(data)
        closed = await client.closed_by_server()
        await client.close()
        # The agent is intact: the next viewer is served as usual.
        again = await RfbClient.connect(agent.port)
        await again.handshake()
        full_raw(again)
        rects = await again.read_update()
        await again.close()
        return closed, len(rects)

    closed, rect_count = agent.run(run())
    assert closed, f"{case}: the agent must close the connection"
    assert rect_count >= 1
