"""Starting desktop sessions: on a tunnel Channel, on any byte stream, on a TCP port."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from fjernhjelp.streams.desktop.errors import DesktopUnavailable
from fjernhjelp.streams.desktop.transport import ByteStream, ChannelStream, SocketStream
from fjernhjelp.streams.desktop.viewer import DesktopViewer, InputEvent
from fjernhjelp.tunnel.channel import Channel

log = logging.getLogger(__name__)


async def serve_stream(
    stream: ByteStream,
    *,
    display: str,
    view_only: bool,
    share_clipboard: bool = False,
    on_input: Callable[[InputEvent], None] | None = None,
    name: str = "fjernhjelp",
) -> None:
    """Run one RFB session on ``stream`` until the viewer leaves; closes the stream."""
    viewer = DesktopViewer(
        stream,
        display=display,
        view_only=view_only,
        share_clipboard=share_clipboard,
        on_input=on_input,
        name=name,
    )
    await viewer.run()


async def serve_desktop(
    channel: Channel,
    *,
    display: str,
    view_only: bool,
    share_clipboard: bool = False,
    on_input: Callable[[InputEvent], None] | None = None,
    name: str = "fjernhjelp",
) -> None:
    """Serve the desktop of X ``display`` as RFB 3.8 on a tunnel channel.

    Returns when the viewer disconnects, the channel closes or the viewer breaks the
    protocol; the channel is closed on return. ``view_only`` sessions never open XTest;
    only ``share_clipboard`` sessions that are not view-only touch the X clipboard, in
    either direction. ``on_input`` is told of every input
    message (``applied`` False when ignored). Raises DesktopUnavailable if the X
    display cannot be used (the channel is closed all the same).
    """
    await serve_stream(
        ChannelStream(channel),
        display=display,
        view_only=view_only,
        share_clipboard=share_clipboard,
        on_input=on_input,
        name=name,
    )


async def listen_tcp(
    host: str,
    port: int,
    *,
    display: str,
    view_only: bool,
    share_clipboard: bool = False,
    name: str = "fjernhjelp",
) -> asyncio.Server:
    """A plain VNC port: every connection gets its own session (tests, local viewers)."""

    async def connected(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        log.info("desktop viewer connected from %s", peer)
        try:
            await serve_stream(
                SocketStream(reader, writer),
                display=display,
                view_only=view_only,
                share_clipboard=share_clipboard,
                name=name,
            )
        except DesktopUnavailable as exc:
            log.error("desktop viewer refused: %s", exc)

    return await asyncio.start_server(connected, host, port)
