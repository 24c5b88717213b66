"""The clipboard of one desktop session: the X CLIPBOARD selection to and from the viewer.

Exists only in a session allowed the clipboard: without it the session opens no X
clipboard connection, announces nothing and ignores the viewer's cut text, so nothing
the end user copies can reach the technician.

A viewer that lists the extended-clipboard pseudo-encoding gets UTF-8 (``extclip``);
any other viewer gets RFB's plain Latin-1 cut text, where other characters become "?".
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable

from fjernhjelp.streams.desktop import extclip, rfb
from fjernhjelp.streams.desktop.clipboard import Clipboard

OUTGOING = 16  # queued messages; older clipboard changes are dropped beyond it


class SessionClipboard:
    """Owns the X clipboard watcher; every method runs on the event loop."""

    def __init__(self, display: str, loop: asyncio.AbstractEventLoop) -> None:
        self.outgoing: asyncio.Queue[bytes] = asyncio.Queue(maxsize=OUTGOING)
        self._latest: str | None = None  # the X clipboard's text, as the viewer knows it
        self._extended = False  # the agent announced the extended clipboard
        self._viewer: extclip.ViewerCaps | None = None
        self._x = Clipboard(display, lambda text: loop.call_soon_threadsafe(self._from_x, text))

    def start(self) -> None:
        self._x.start()

    def close(self) -> None:
        self._x.close()

    @property
    def extended(self) -> bool:
        return self._extended

    def encodings(self, encodings: Iterable[int]) -> None:
        """A SetEncodings: the first one listing the pseudo-encoding gets the agent's caps."""
        if not self._extended and rfb.Encoding.EXTENDED_CLIPBOARD in encodings:
            self._extended = True
            self._send(extclip.caps())

    def _send(self, message: bytes) -> None:
        with contextlib.suppress(asyncio.QueueFull):
            self.outgoing.put_nowait(message)

    def _from_x(self, text: str) -> None:
        # Programs may announce one copy more than once; what the viewer has already
        # (or an empty selection) is not news.
        if not text or text == self._latest:
            return
        self._latest = text
        if not self._extended:
            self._send(rfb.server_cut_text(text))
        elif self._viewer is None or self._viewer.actions & extclip.NOTIFY:
            # noVNC takes no text unasked: tell it there is some, it asks.
            self._send(extclip.notify(True))
        else:
            self._send(extclip.provide(text))

    def plain_text(self, text: str) -> None:
        """Latin-1 ClientCutText (any viewer may send it)."""
        self._set(text)

    def _set(self, text: str) -> None:
        self._latest = text  # what the X clipboard now holds, from the viewer itself
        self._x.set_text(text)

    def extended_message(self, message: extclip.ExtendedMessage) -> bool:
        """A viewer's extended message; True when it put text on the X clipboard.
        Raises BadExtendedClipboard for a malformed one."""
        action = message.action
        if action & extclip.CAPS:
            self._viewer = extclip.parse_caps(message)
        elif action == extclip.NOTIFY:
            if message.has_text:
                self._send(extclip.request())
        elif action == extclip.REQUEST:
            if message.has_text and self._latest is not None:
                self._send(extclip.provide(self._latest))
            else:
                self._send(extclip.notify(False))
        elif action == extclip.PEEK:
            self._send(extclip.notify(self._latest is not None))
        elif action == extclip.PROVIDE:
            text = extclip.parse_provide(message)
            if text is not None:
                self._set(text)
                return True
        return False
