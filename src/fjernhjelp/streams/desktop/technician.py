"""A local VNC port for the technician: any VNC viewer on this machine reaches the
remote desktop through the end-to-end tunnel.

Each viewer connection gets its own ``desktop`` stream; the RFB bytes are carried as
messages (the agent's desktop service reads them as one byte stream). The port listens on
loopback only: it has no password of its own, the tunnel is what protects the session.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
from collections.abc import Awaitable, Callable

from fjernhjelp.tunnel import Channel, ChannelClosed

_log = logging.getLogger(__name__)

CHUNK = 64 * 1024  # one message at most; the tunnel fragments nothing smaller


class NotLoopback(ValueError):
    pass


def parse_listen(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    try:
        if not ipaddress.ip_address(host).is_loopback:
            raise NotLoopback(f"{host} is not a loopback address")
    except ValueError as exc:
        if isinstance(exc, NotLoopback):
            raise
        raise NotLoopback(f"{host} is not an IP address") from exc
    return host, int(port)


async def bridge(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, channel: Channel
) -> None:
    """Copy one VNC viewer's bytes to a desktop stream and back, until either side ends."""

    async def up() -> None:
        while data := await reader.read(CHUNK):
            await channel.send(data)

    async def down() -> None:
        while True:
            writer.write(await channel.recv())
            await writer.drain()

    tasks = [asyncio.create_task(up()), asyncio.create_task(down())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, ChannelClosed, OSError):
                await task
        with contextlib.suppress(ChannelClosed):
            await channel.close()
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def serve_local_vnc(
    open_desktop: Callable[[], Awaitable[Channel]],
    host: str,
    port: int,
    *,
    on_listening: Callable[[str, int], None] | None = None,
    until: Awaitable[object] | None = None,
) -> None:
    """Listen on host:port; each viewer gets ``await open_desktop()``. Returns when
    ``until`` completes (the tunnel closed) or the task is cancelled."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            channel = await open_desktop()
        except (ChannelClosed, OSError) as exc:
            _log.warning("desktop refused: %s", exc)
            writer.close()
            return
        await bridge(reader, writer, channel)

    server = await asyncio.start_server(handle, host, port)
    bound = server.sockets[0].getsockname()
    if on_listening is not None:
        on_listening(bound[0], bound[1])
    async with server:
        if until is None:
            await server.serve_forever()
        else:
            await until
