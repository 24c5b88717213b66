"""The chat at the technician's command line: lines typed go to the end user's chat
area, their replies are shown as they come.

Standard input is read through the event loop, not a thread: a thread blocked in
``readline`` when the end user closes the chat would keep the process alive.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable

from fjernhjelp.streams.chat.wire import ChatRefusal, message_for, parse_message
from fjernhjelp.tunnel import Channel, ChannelClosed


async def run_chat_client(channel: Channel, stdin_fd: int, show: Callable[[str], None]) -> int:
    """Until standard input ends or the other side closes the chat; returns an exit code
    (0, or 1 when the other side sent something that is not a chat message)."""
    loop = asyncio.get_running_loop()
    lines: asyncio.Queue[str | None] = asyncio.Queue()
    pending = b""

    def readable() -> None:
        nonlocal pending
        try:
            chunk = os.read(stdin_fd, 4096)
        except OSError:
            chunk = b""
        if not chunk:
            loop.remove_reader(stdin_fd)
            lines.put_nowait(None)
            return
        pending += chunk
        *whole, pending = pending.split(b"\n")
        for line in whole:
            lines.put_nowait(line.decode("utf-8", "replace"))

    async def send() -> None:
        while (line := await lines.get()) is not None:
            if line.strip():
                await channel.send(message_for(line))

    async def receive() -> int:
        while True:
            try:
                raw = await channel.recv()
            except ChannelClosed:
                return 0
            try:
                show(parse_message(raw))
            except ChatRefusal:
                return 1

    loop.add_reader(stdin_fd, readable)
    sender, receiver = asyncio.create_task(send()), asyncio.create_task(receive())
    try:
        done, _ = await asyncio.wait({sender, receiver}, return_when=asyncio.FIRST_COMPLETED)
        code = receiver.result() if receiver in done else 0
        if sender in done:
            # The end of input ends the chat from this side (a ChannelClosed in send: the
            # other side went first, which is the same end).
            with contextlib.suppress(ChannelClosed):
                sender.result()
        return code
    finally:
        loop.remove_reader(stdin_fd)
        for task in (sender, receiver):
            task.cancel()
        with contextlib.suppress(ChannelClosed):
            await channel.close()
