"""The session indicator: always on top while a technician is connected, with "End session".

:class:`SessionIndicator` runs the indicator as a separate process on the user's display
(see ``display``). The session must end when :attr:`SessionIndicator.ended` is set: the
user pressed "End session" or closed the window (``ended_by_user``), or the indicator
process went away (killed, crashed, display gone). A session the user cannot see is not
allowed to go on unseen, so the last case ends it too.

The indicator is also where the user chats with the technician (``streams.chat``): the agent
writes the technician's messages to the window process as commands on its stdin, the
window sends the user's replies back as ``chat`` events.

The window program itself is ``agent.windows.indicator``; this module only starts it, in
its own process, and talks to it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence

from fjernhjelp.agent.consent import PERMISSIONS
from fjernhjelp.agent.display import (
    DialogProcess,
    DisplayTarget,
    ShownWindow,
    clean_text,
    start_dialog,
)
from fjernhjelp.i18n import Translator
from fjernhjelp.streams.chat.wire import MAX_TEXT
from fjernhjelp.tunnel import ChannelClosed

WINDOW_PROGRAM = "fjernhjelp.agent.windows.indicator"  # run as ``python -m``
STARTUP_TIMEOUT = 20.0
USER_REASONS = ("end_button", "window_closed")


def indicator_texts(
    technician: str, organisation: str, permissions: Sequence[str], t: Translator
) -> dict[str, str]:
    """Everything the indicator shows, translated; the window program has no logic."""
    # What the session may do, in the consent dialog's order and words: the user sees
    # whether the clipboard is shared. A name without a text is left out.
    may = ", ".join(t(f"agent.permission.{p}") for p in PERMISSIONS if p in permissions)
    return {
        "title": t("agent.indicator.window_title"),
        "connected": t(
            "agent.indicator.connected",
            technician=clean_text(technician),
            organisation=clean_text(organisation),
        ),
        "may": t("agent.indicator.may", what=may) if may else "",
        "end_session": t("agent.indicator.end_session"),
        "technician": clean_text(technician),
        "chat_heading": t("agent.indicator.chat_heading", technician=clean_text(technician)),
        "chat_you": t("agent.indicator.chat_you"),
        "chat_send": t("agent.indicator.chat_send"),
        "chat_closed": t("agent.indicator.chat_closed"),
        "chat_hide": t("agent.indicator.chat_hide"),
        "chat_show": t("agent.indicator.chat_show"),
        "paused": t("agent.indicator.paused"),
    }


class IndicatorUnavailable(Exception):
    """The indicator could not be shown; ``reason`` is ``no_display`` or ``failed``."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class SessionIndicator:
    def __init__(
        self,
        *,
        technician: str,
        organisation: str,
        display: DisplayTarget,
        permissions: Sequence[str] = (),
        language: str | None = None,
        _argv: list[str] | None = None,
        _prestarted: DialogProcess | None = None,
    ) -> None:
        t = Translator(language or display.language or "nb")
        self._prestarted = _prestarted  # launched ahead (the Support client), or None
        self._texts = indicator_texts(technician, organisation, permissions, t)
        self._display = display
        self._argv = _argv
        self._dialog: DialogProcess | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._closing = False
        self.ended = asyncio.Event()
        self.end_reason: str | None = None
        self.shown: ShownWindow | None = None
        self.chat_shown: ShownWindow | None = None  # where the chat area is, once open
        self.on_chat_shown: Callable[[ShownWindow], None] | None = None
        self._chatting = False
        self._replies: asyncio.Queue[str | None] = asyncio.Queue()

    @property
    def ended_by_user(self) -> bool:
        return self.end_reason in USER_REASONS

    async def start(self) -> None:
        """Show the indicator; raises IndicatorUnavailable if it cannot be shown."""
        prestarted, self._prestarted = self._prestarted, None
        self._dialog = await start_dialog(
            WINDOW_PROGRAM,
            {"texts": self._texts},
            self._display,
            argv=self._argv,
            prestarted=prestarted,
        )
        first = await self._dialog.next_event(within=STARTUP_TIMEOUT)
        shown = ShownWindow.from_event(first) if first and first["event"] == "shown" else None
        if shown is None:
            await self._dialog.stop()
            no_display = bool(first) and first.get("reason") == "no_display"  # type: ignore[union-attr]
            raise IndicatorUnavailable("no_display" if no_display else "failed")
        self.shown = shown
        self._watcher = asyncio.create_task(self._watch())

    async def _watch(self) -> None:
        assert self._dialog is not None
        while True:
            event = await self._dialog.next_event(within=3600.0 * 24)
            if event is None:
                if self._dialog.problem == "timeout":
                    continue  # a day without events: still there
                self._end("closed" if self._closing else "indicator_exited")
                return
            if event["event"] == "end":
                reason = event.get("by")
                self._end(reason if reason in USER_REASONS else "end_button")
                return
            if event["event"] == "chat":
                self._reply(event.get("text"))
            elif event["event"] == "chat_shown":
                self.chat_shown = ShownWindow.from_event(event)
                if self.chat_shown is not None and self.on_chat_shown is not None:
                    self.on_chat_shown(self.chat_shown)

    def _reply(self, text: object) -> None:
        # The window is the user's own program, but it is checked like any input all the same.
        if self._chatting and isinstance(text, str) and text.strip():
            self._replies.put_nowait(text[:MAX_TEXT])

    def _end(self, reason: str) -> None:
        if self.end_reason is None:
            self.end_reason = reason
        self.ended.set()
        self._replies.put_nowait(None)  # a waiting chat learns the window is gone

    # --- chat (see streams.chat.service.ChatWindow) ------------------------------------------

    def claim_chat(self) -> bool:
        if self._chatting or self.ended.is_set() or self._dialog is None:
            return False
        self._chatting = True
        while not self._replies.empty():
            self._replies.get_nowait()  # typed into an earlier, closed chat
        return True

    async def show_chat(self, text: str) -> bool:
        assert self._dialog is not None
        return await self._dialog.send({"cmd": "chat_message", "text": text[:MAX_TEXT]})

    async def next_reply(self) -> str:
        reply = await self._replies.get()
        if reply is None:
            self._replies.put_nowait(None)
            raise ChannelClosed("indicator gone")
        return reply

    async def show_paused(self, paused: bool) -> bool:
        """Tell the person that remote control is paused (a consent dialog is open)."""
        if self._dialog is None or self.ended.is_set():
            return False
        return await self._dialog.send({"cmd": "paused", "on": paused})

    async def release_chat(self) -> None:
        if self._chatting and self._dialog is not None:
            self._chatting = False
            await self._dialog.send({"cmd": "chat_closed"})

    async def wait(self) -> str:
        """Wait until the session should end; returns why."""
        await self.ended.wait()
        assert self.end_reason is not None
        return self.end_reason

    async def close(self) -> None:
        """Take the indicator down (the session ended for another reason)."""
        self._closing = True
        if self._dialog is not None:
            await self._dialog.stop()
        if self._watcher is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(self._watcher, 5)
        self._end("closed")
