"""The ``chat`` service, agent side: text between the technician's console and the person
at the machine.

The stream carries the JSON messages of ``wire`` both ways. What the technician sends is
shown in the session indicator window (see ``agent.indicator``), what the user types there
goes back the same way. Every incoming message is checked (``wire.parse_message``) before it
reaches the window; the first malformed one ends the chat with BAD_REQUEST (the session
itself goes on): a console that sends garbage is broken or hostile, and guessing what it
meant is worse than saying no.

Audit: the text is never reported, since people type health details into chat. What is
reported, once when the chat ends, is how many messages went each way and how many
characters. We chose counts at the end over one audit row a message: a row a message would
let anyone with the chat permission write without bound into the customer's audit log,
and the times of single messages tell an investigator little that the stream's opening
(``stream.opened``) and this closing record do not.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from fjernhjelp.streams.chat.wire import ChatRefusal, message_for, parse_message
from fjernhjelp.tunnel import Channel, ChannelClosed


class ChatWindow(Protocol):
    """Where the end user reads and answers (the session indicator)."""

    def claim_chat(self) -> bool:
        """Start a chat; False if one is already open (one conversation at a time)."""
        ...

    async def show_chat(self, text: str) -> bool:
        """Show a message from the technician; False if the window is gone."""
        ...

    async def next_reply(self) -> str:
        """The next message the user sent; raises ChannelClosed when the window is gone."""
        ...

    async def release_chat(self) -> None:
        """The chat ended: tell the user, stop taking replies."""
        ...


@dataclass
class ChatOutcome:
    """What the audit log gets about one chat: counts, never text."""

    ended: str = "closed"  # closed, or the refusal code (bad message, busy, no window)
    to_user: int = 0
    from_user: int = 0
    chars_to_user: int = 0
    chars_from_user: int = 0


async def serve_chat(
    channel: Channel, window: ChatWindow | None, on_end: Callable[[ChatOutcome], None]
) -> None:
    """Relay one chat between ``channel`` and ``window`` until either side ends it."""
    outcome = ChatOutcome()
    if window is None or not window.claim_chat():
        outcome.ended = "no_window" if window is None else "busy"
        await channel.close(outcome.ended)
        on_end(outcome)
        return
    incoming = asyncio.create_task(_to_user(channel, window, outcome))
    outgoing = asyncio.create_task(_from_user(channel, window, outcome))
    try:
        await asyncio.wait([incoming, outgoing], return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (incoming, outgoing):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, ChannelClosed, Exception):
                await task
        await window.release_chat()
        await channel.close("bad-request" if outcome.ended != "closed" else "closed")
        on_end(outcome)


async def _to_user(channel: Channel, window: ChatWindow, outcome: ChatOutcome) -> None:
    while True:
        try:
            raw = await channel.recv()
        except ChannelClosed:
            return
        try:
            text = parse_message(raw)
        except ChatRefusal as refusal:
            outcome.ended = refusal.code
            return
        if not await window.show_chat(text):
            return
        outcome.to_user += 1
        outcome.chars_to_user += len(text)


async def _from_user(channel: Channel, window: ChatWindow, outcome: ChatOutcome) -> None:
    while True:
        try:
            text = await window.next_reply()
            await channel.send(message_for(text))
        except ChannelClosed:
            return
        outcome.from_user += 1
        outcome.chars_from_user += len(text)
