"""Remote input held back while the person at the machine is asked for consent.

One agent process serves every session on the display, and a consent dialog is an X
window like any other: a technician already in control of the screen could click Allow
for a second session (or Tab to it and press space). So while any consent dialog is
open, every desktop session drops the pointer, keys and clipboard text its viewer sends.

Dropped, not queued: input replayed after the dialog closes would land on whatever is
under the pointer then, on a screen that has changed, aimed blind; and a queue is memory
a viewer could fill. The technician sees that nothing happened, the indicator tells the
person at the machine why, and the agent reports how much was held back.

Honest limit: this holds back the input the agent injects. A technician with a shell as
the desktop user (or root) can still reach the X server directly; that is what the
separate "terminal" permissions are for.

Use from the agent's event loop only (no locking).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator

_log = logging.getLogger(__name__)

Listener = Callable[[bool], None]


class InputHold:
    def __init__(self) -> None:
        self._open = 0
        self._listeners: list[Listener] = []

    @property
    def held(self) -> bool:
        return self._open > 0

    @contextlib.contextmanager
    def holding(self) -> Iterator[None]:
        """Hold remote input for as long as the block runs (nests: consent dialogs of
        two sessions at once hold it until both are answered)."""
        self._open += 1
        if self._open == 1:
            self._notify(True)
        try:
            yield
        finally:
            self._open -= 1
            if self._open == 0:
                self._notify(False)

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """``listener(True)`` when input starts being held, ``(False)`` when it is let
        go. Returns the function that unsubscribes."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    def _notify(self, held: bool) -> None:
        _log.info("remote input %s", "held back: a consent dialog is open" if held else "resumed")
        for listener in list(self._listeners):
            try:
                listener(held)
            except Exception:
                # One broken listener must not keep the hold from reaching the others.
                _log.exception("input hold listener failed")


# One per agent process: the process serves every session on the display.
HOLD = InputHold()
