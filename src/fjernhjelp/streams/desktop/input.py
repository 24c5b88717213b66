"""Pointer and keyboard injection with XTest.

RFB sends keysyms (what the technician's keyboard produced), X injects keycodes (keys
on the customer's layout). A keysym found at level 1 or 2 of the customer layout is
pressed with Shift set or cleared as that level needs, whatever the technician holds.
A keysym the layout lacks (æ ø å on a US layout, dead keys, any Unicode keysym) is
bound for the moment to a spare keycode, pressed, and the spare keycodes are returned
to NoSymbol when the session ends.

Æ, Ø and Å are the exception: where the layout lacks them they are bound when the
session starts, lower and upper case on one key as on a Norwegian keyboard. An
application reads a key with the mapping it last caught up with, and on a loaded machine
it can read a letter bound a moment before with the old, empty one and lose it; letters
typed all day must not depend on that race.
"""

from __future__ import annotations

import time
from collections import OrderedDict

from Xlib import XK, X
from Xlib import display as xdisplay
from Xlib.error import DisplayError

from fjernhjelp.streams.desktop.errors import DesktopUnavailable

SHIFTS = (XK.XK_Shift_L, XK.XK_Shift_R)
BUTTONS = 8  # RFB's mask: 1-3 buttons, 4/5 wheel up/down, 6/7 wheel left/right, 8 back


def _adjusts_shift(keysym: int) -> bool:
    """Printable keysyms: the character decides Shift, not the technician's Shift key."""
    return (0x20 <= keysym <= 0xFEFF and not 0xFE00 <= keysym <= 0xFE4F) or keysym >= 0x01000000


MAPPING_SETTLE_SECONDS = 0.05
LETTERS_SETTLE_SECONDS = 0.2  # after binding the letters at start, before the first key
# An application turns a keycode into a keysym when it handles the event, not when X
# delivers it; Tk even reads MappingNotify ahead of key presses still queued. Borrowed
# keycodes stay bound this long after the last key, or a session that ends right after
# typing turns its last "ø" into nothing (seen with a viewer that types, then leaves).
KEYMAP_GRACE_SECONDS = 1.0
NORWEGIAN_LETTERS = (
    (XK.XK_ae, XK.XK_AE),
    (XK.XK_oslash, XK.XK_Ooblique),
    (XK.XK_aring, XK.XK_Aring),
)


class InputInjector:
    """Injects RFB key and pointer events into one X display. Use from one thread."""

    def __init__(self, display: str) -> None:
        try:
            self._x = xdisplay.Display(display)
        except (DisplayError, OSError) as exc:
            raise DesktopUnavailable(display, f"cannot open: {exc}") from exc
        if not self._x.has_extension("XTEST"):
            self._x.close()
            raise DesktopUnavailable(display, "no XTEST extension")
        self._buttons = 0
        self._held: dict[int, int] = {}  # keysym -> keycode we pressed for it
        self._shift_code = self._x.keysym_to_keycode(XK.XK_Shift_L)
        low, high = self._x.display.info.min_keycode, self._x.display.info.max_keycode
        mapping = self._x.get_keyboard_mapping(low, high - low + 1)
        # The display info is untyped in the Xlib stubs; keycodes are ints.
        self._spares: list[int] = [low + i for i, syms in enumerate(mapping) if not any(syms)]
        self._bound: OrderedDict[int, int] = OrderedDict()  # spare keycode -> keysym
        self._letters: dict[int, tuple[int, int]] = {}  # keysym -> (keycode, level)
        self._letters_ready = 0.0
        self._last_key = 0.0
        self._bind_letters()

    def _on_layout(self, keysym: int) -> bool:
        return any(index in (0, 1) for _code, index in self._x.keysym_to_keycodes(keysym))

    def _bind_letters(self) -> None:
        for lower, upper in NORWEGIAN_LETTERS:
            if self._on_layout(lower) or not self._spares:
                continue
            code = self._spares.pop()  # from the end: lazily bound keysyms take the front
            self._x.change_keyboard_mapping(code, [(lower, upper)])
            self._letters[lower], self._letters[upper] = (code, 0), (code, 1)
        if self._letters:
            self._x.sync()
            # Waited out only if a key comes sooner (the handshake usually takes longer).
            self._letters_ready = time.monotonic() + LETTERS_SETTLE_SECONDS

    # -- pointer --------------------------------------------------------------------

    def pointer(self, buttons: int, x: int, y: int) -> None:
        # The X server keeps the pointer on the screen, whatever its current size.
        self._x.xtest_fake_input(X.MotionNotify, x=x, y=y)
        for bit in range(BUTTONS):
            was, now = self._buttons >> bit & 1, buttons >> bit & 1
            if was != now:
                self._x.xtest_fake_input(X.ButtonPress if now else X.ButtonRelease, bit + 1)
        self._buttons = buttons
        self._x.flush()

    # -- keyboard -------------------------------------------------------------------

    def key(self, down: bool, keysym: int) -> None:
        self._last_key = time.monotonic()
        if down:
            self._press(keysym)
        else:
            self._release(keysym)
        self._x.flush()

    def _press(self, keysym: int) -> None:
        keycode = self._held.get(keysym)
        level = None
        if keycode is None:
            keycode, level = self._locate(keysym)
            if keycode is None:
                return  # no spare keycode left: the key is dropped, not mistyped
        shift_held = [c for s, c in self._held.items() if s in SHIFTS]
        want_shift = level == 1
        if level is None or not _adjusts_shift(keysym) or want_shift == bool(shift_held):
            self._x.xtest_fake_input(X.KeyPress, keycode)
        elif want_shift:
            self._x.xtest_fake_input(X.KeyPress, self._shift_code)
            self._x.xtest_fake_input(X.KeyPress, keycode)
            self._x.xtest_fake_input(X.KeyRelease, self._shift_code)
        else:
            for code in shift_held:
                self._x.xtest_fake_input(X.KeyRelease, code)
            self._x.xtest_fake_input(X.KeyPress, keycode)
            for code in shift_held:
                self._x.xtest_fake_input(X.KeyPress, code)
        self._held[keysym] = keycode

    def _release(self, keysym: int) -> None:
        keycode = self._held.pop(keysym, None)
        if keycode is not None:
            self._x.xtest_fake_input(X.KeyRelease, keycode)

    def _locate(self, keysym: int) -> tuple[int | None, int | None]:
        """The keycode for ``keysym`` and its level (0 plain, 1 shifted, None: bound)."""
        letter = self._letters.get(keysym)
        if letter is not None:
            wait = self._letters_ready - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            return letter
        for code, sym in self._bound.items():
            if sym == keysym:
                self._bound.move_to_end(code)
                return code, None
        found = sorted((index, code) for code, index in self._x.keysym_to_keycodes(keysym))
        for index, code in found:
            if index in (0, 1):
                return code, index
        return self._bind(keysym), None

    def _bind(self, keysym: int) -> int | None:
        in_use = set(self._held.values())
        free = [c for c in self._spares if c not in self._bound and c not in in_use]
        if free:
            code = free[0]
        else:
            reusable = [c for c in self._bound if c not in in_use]
            if not reusable:
                return None
            code = reusable[0]
            del self._bound[code]
        # The same keysym on both levels, so Shift held by the technician changes nothing.
        self._x.change_keyboard_mapping(code, [(keysym, keysym)])
        self._x.sync()
        # Applications learn of the new mapping from a MappingNotify they handle in their
        # own time; a key sent at once can reach them before it and be read with the old
        # (empty) mapping. A short pause, once per newly bound keysym (they are cached),
        # lets them catch up, as xdotool does for the same reason.
        time.sleep(MAPPING_SETTLE_SECONDS)
        self._bound[code] = keysym
        return code

    # -- end ------------------------------------------------------------------------

    def release_all(self) -> None:
        """Let go of every key and button this session holds down."""
        for keycode in self._held.values():
            self._x.xtest_fake_input(X.KeyRelease, keycode)
        self._held.clear()
        for bit in range(BUTTONS):
            if self._buttons >> bit & 1:
                self._x.xtest_fake_input(X.ButtonRelease, bit + 1)
        self._buttons = 0
        self._x.flush()

    def keymap_grace(self) -> float:
        """Seconds to wait before ``close`` gives the borrowed keycodes back."""
        return max(0.0, self._last_key + KEYMAP_GRACE_SECONDS - time.monotonic())

    def close(self) -> None:
        try:
            self.release_all()
            for code in {*self._bound, *(code for code, _level in self._letters.values())}:
                self._x.change_keyboard_mapping(code, [(X.NoSymbol, X.NoSymbol)])
            self._bound.clear()
            self._letters.clear()
            self._x.sync()
        finally:
            self._x.close()
