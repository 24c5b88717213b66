"""Clipboard text both ways between the viewer and the X CLIPBOARD selection.

X has no clipboard store: the owner of a selection answers every request for it. So
the agent owns CLIPBOARD (and PRIMARY) with an invisible window after ClientCutText,
and answers requests from its own connection; XFixes tells it when another program
takes CLIPBOARD, and it then asks that program for the text. All of this runs in one
thread with its own X connection, because it must answer requests at any time.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import queue
import select
import threading
from collections.abc import Callable

from Xlib import X, Xatom
from Xlib import display as xdisplay
from Xlib.error import ConnectionClosedError, DisplayError
from Xlib.ext import xfixes
from Xlib.protocol import event as xevent
from Xlib.protocol import rq

from fjernhjelp.streams.desktop.errors import DesktopUnavailable

log = logging.getLogger(__name__)

MAX_TEXT = 1 << 20  # a larger selection is not forwarded


class Clipboard:
    """Watches and sets the X clipboard; ``on_change`` runs in the clipboard thread."""

    def __init__(self, display: str, on_change: Callable[[str], object]) -> None:
        try:
            self._x = xdisplay.Display(display)
        except (DisplayError, OSError) as exc:
            raise DesktopUnavailable(display, f"cannot open: {exc}") from exc
        if not self._x.has_extension("XFIXES"):
            self._x.close()
            raise DesktopUnavailable(display, "no XFIXES extension")
        self._x.xfixes_query_version()
        self._on_change = on_change
        root = self._x.screen().root
        self._window = root.create_window(0, 0, 1, 1, 0, X.CopyFromParent)
        atom = self._x.intern_atom
        self._clipboard = atom("CLIPBOARD")
        self._targets = atom("TARGETS")
        self._utf8 = atom("UTF8_STRING")
        self._text_atom = atom("TEXT")
        self._incoming = atom("FJERNHJELP_CLIPBOARD")
        self._x.xfixes_select_selection_input(
            self._window, self._clipboard, xfixes.XFixesSetSelectionOwnerNotifyMask
        )
        self._x.flush()
        self._owned_text: bytes | None = None  # UTF-8 of what the agent offers
        self._requests: queue.Queue[str] = queue.Queue()
        self._wake_r, self._wake_w = os.pipe()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="clipboard", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def set_text(self, text: str) -> None:
        """Offer ``text`` as the X clipboard (from any thread)."""
        self._requests.put(text)
        os.write(self._wake_w, b"x")

    def close(self) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")
        if self._thread.is_alive():
            self._thread.join(5)
        with contextlib.suppress(OSError):
            os.close(self._wake_r)
            os.close(self._wake_w)
        with contextlib.suppress(Exception):
            self._x.close()

    # -- the thread -----------------------------------------------------------------

    def _run(self) -> None:
        fd = self._x.fileno()
        try:
            while not self._stop.is_set():
                readable, _, _ = select.select([fd, self._wake_r], [], [], 1.0)
                if self._wake_r in readable:
                    os.read(self._wake_r, 4096)
                    self._guarded(self._take_requests)
                while self._x.pending_events():
                    event = self._x.next_event()
                    self._guarded(functools.partial(self._handle, event))
        except (ConnectionClosedError, OSError):  # the display went away
            log.info("clipboard thread stopped: the X connection closed")
        except Exception:  # the session goes on without a clipboard
            log.exception("clipboard thread stopped")

    def _guarded(self, step: Callable[[], None]) -> None:
        # One odd event (a program that answers a request wrongly, a window that went
        # away in between) must not end the clipboard for the rest of the session.
        try:
            step()
        except ConnectionClosedError:
            raise
        except Exception:
            log.exception("clipboard event skipped")

    def _take_requests(self) -> None:
        while True:
            try:
                text = self._requests.get_nowait()
            except queue.Empty:
                return
            self._owned_text = text.encode("utf-8")
            for selection in (self._clipboard, Xatom.PRIMARY):
                self._window.set_selection_owner(selection, X.CurrentTime)
            self._x.flush()

    # python-xlib events carry their fields as dynamic attributes (Any in the stubs).
    def _handle(self, ev: rq.Event) -> None:
        kind = getattr(ev, "type", None)
        if (kind, getattr(ev, "sub_code", None)) == self._x.extension_event.SetSelectionOwnerNotify:
            owner = ev.owner
            if owner not in (X.NONE, self._window.id):
                self._window.convert_selection(
                    self._clipboard, self._utf8, self._incoming, X.CurrentTime
                )
                self._x.flush()
        elif kind == X.SelectionNotify:
            self._receive(ev)
        elif kind == X.SelectionRequest:
            self._answer(ev)
        elif kind == X.SelectionClear and ev.atom == self._clipboard:
            # Another program copied something: python-xlib names the selection "atom".
            self._owned_text = None

    def _receive(self, ev: rq.Event) -> None:
        target = ev.target
        if ev.property == X.NONE:
            if target == self._utf8:  # an older program: ask for Latin-1 STRING instead
                self._window.convert_selection(
                    self._clipboard, Xatom.STRING, self._incoming, X.CurrentTime
                )
                self._x.flush()
            return
        prop = self._window.get_full_property(self._incoming, X.AnyPropertyType, MAX_TEXT)
        self._window.delete_property(self._incoming)
        self._x.flush()
        if prop is None or prop.format != 8 or len(prop.value) > MAX_TEXT:
            return  # INCR transfers (very large selections) are not forwarded
        raw = bytes(prop.value)
        text = raw.decode("utf-8", "replace") if target == self._utf8 else raw.decode("latin-1")
        self._on_change(text)

    def _answer(self, ev: rq.Event) -> None:
        requestor = ev.requestor
        target = ev.target
        prop = ev.property or target
        owned = self._owned_text
        if owned is not None and target == self._targets:
            atoms = [self._targets, self._utf8, self._text_atom, Xatom.STRING]
            requestor.change_property(prop, Xatom.ATOM, 32, atoms)
        elif owned is not None and target in (self._utf8, self._text_atom):
            requestor.change_property(prop, self._utf8, 8, owned)
        elif owned is not None and target == Xatom.STRING:
            text = owned.decode("utf-8").encode("latin-1", "replace")
            requestor.change_property(prop, Xatom.STRING, 8, text)
        else:
            prop = X.NONE
        notify = xevent.SelectionNotify(
            time=ev.time,
            requestor=requestor,
            selection=ev.selection,
            target=target,
            property=prop,
        )
        requestor.send_event(notify)
        self._x.flush()
