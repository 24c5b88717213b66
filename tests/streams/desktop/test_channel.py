"""The desktop service on a tunnel Channel: one RFB byte stream as bounded messages."""

from __future__ import annotations

import asyncio
import struct

import pytest

from fjernhjelp.streams.desktop import viewer as session
from fjernhjelp.streams.desktop.errors import DesktopUnavailable
from fjernhjelp.streams.desktop.service import serve_desktop
from fjernhjelp.streams.desktop.transport import MAX_CHANNEL_MESSAGE, ChannelStream
from fjernhjelp.tunnel.channel import ChannelClosed, memory_pair
from tests.asyncrun import run_async
from tests.desktop.xvfb import Xvfb

pytestmark = pytest.mark.desktop


def test_serve_desktop_on_a_channel(xserver: Xvfb) -> None:
    async def run() -> tuple[list[int], bytes, bool]:
        agent_end, viewer_end = memory_pair()
        sizes: list[int] = []
        send = agent_end.send

        async def recording_send(message: bytes) -> None:
            sizes.append(len(message))
            await send(message)

        agent_end.send = recording_send  # type: ignore[method-assign]
        service = asyncio.create_task(
            serve_desktop(agent_end, display=xserver.display, view_only=True)
        )
        viewer = ChannelStream(viewer_end)
        assert await viewer.read_exactly(12) == b"RFB 003.008\n"
        await viewer.write(b"RFB 003.008\n")
        assert await viewer.read_exactly(2) == b"\x01\x01"
        await viewer.write(b"\x01")
        assert await viewer.read_exactly(4) == b"\0\0\0\0"
        await viewer.write(b"\x01")
        width, height = struct.unpack(">HH", await viewer.read_exactly(4))
        await viewer.read_exactly(16)
        (name_length,) = struct.unpack(">I", await viewer.read_exactly(4))
        await viewer.read_exactly(name_length)
        await viewer.write(struct.pack(">BxHi", 2, 1, 0))  # Raw only
        await viewer.write(struct.pack(">BBHHHH", 3, 0, 0, 0, width, height))
        header = await viewer.read_exactly(4 + 12)
        pixels = await viewer.read_exactly(width * height * 4)
        await viewer_end.close()
        await asyncio.wait_for(service, 20)  # the service returns when the viewer goes
        with pytest.raises(ChannelClosed):
            await agent_end.send(b"x")
        return sizes, header + pixels[:4], service.done()

    sizes, start, ended = run_async(run())
    assert ended
    assert start[:4] == b"\x00\x00\x00\x01"  # one rectangle
    assert max(sizes) <= MAX_CHANNEL_MESSAGE
    assert sum(sizes) > 1280 * 800 * 4  # the 4 MB frame went as many messages


def test_an_unusable_display_is_refused_and_the_channel_closed() -> None:
    async def run() -> None:
        agent_end, viewer_end = memory_pair()
        with pytest.raises(DesktopUnavailable) as refused:
            await serve_desktop(agent_end, display=":9999", view_only=False)
        assert refused.value.display == ":9999"
        with pytest.raises(ChannelClosed):
            await viewer_end.recv()

    run_async(run())


def test_a_viewer_that_never_speaks_is_dropped(
    xserver: Xvfb, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(session, "HANDSHAKE_TIMEOUT", 0.5)

    async def run() -> bytes:
        agent_end, viewer_end = memory_pair()
        service = asyncio.create_task(
            serve_desktop(agent_end, display=xserver.display, view_only=True)
        )
        greeting = await viewer_end.recv()  # the server's version; the viewer stays silent
        await asyncio.wait_for(service, 20)
        with pytest.raises(ChannelClosed):
            await viewer_end.recv()
        return greeting

    assert run_async(run()) == b"RFB 003.008\n"
