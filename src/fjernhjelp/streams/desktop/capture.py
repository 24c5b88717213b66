"""Screen capture (mss, which uses MIT-SHM XShmGetImage) and the pointer shape (XFixes).

mss already reads the screen through shared memory (XShmGetImage) and falls back to
XGetImage where MIT-SHM is missing, so the agent does not talk XShm itself;
``bench/desktop.py`` prints the capture time of both mss back ends.
"""

from __future__ import annotations

import numpy as np
from mss import MSS
from Xlib import X
from Xlib import display as xdisplay
from Xlib.error import DisplayError, XError
from Xlib.ext import damage as xdamage
from Xlib.ext import xfixes

from fjernhjelp.streams.desktop.damage import union
from fjernhjelp.streams.desktop.encoders.base import Rect
from fjernhjelp.streams.desktop.encoders.cursor import CursorImage
from fjernhjelp.streams.desktop.errors import DesktopUnavailable


class Screen:
    """One X screen: its size, its pixels and its pointer shape. Use from one thread."""

    def __init__(self, display: str, backend: str = "default") -> None:
        self.display_name = display
        self._backend = backend
        try:
            self._x = xdisplay.Display(display)
        except (DisplayError, OSError) as exc:
            raise DesktopUnavailable(display, f"cannot open: {exc}") from exc
        self._root = self._x.screen().root
        self._has_xfixes = self._x.has_extension("XFIXES")
        if self._has_xfixes:
            self._x.xfixes_query_version()
            self._x.xfixes_select_cursor_input(self._root, xfixes.XFixesDisplayCursorNotifyMask)
        # X DAMAGE reports where the screen changed, so a still screen costs no capture.
        self._damage = None
        if self._x.has_extension("DAMAGE"):
            self._x.damage_query_version()
            self._damage = self._root.damage_create(xdamage.DamageReportBoundingBox)
        self._x.sync()
        self.cursor_changed = True
        self._size = self._query_size()
        self._frame: np.ndarray | None = None
        self._mss = MSS(display=display, backend=backend)

    def _query_size(self) -> tuple[int, int]:
        geometry = self._root.get_geometry()
        return geometry.width, geometry.height

    @property
    def size(self) -> tuple[int, int]:
        return self._size

    def refresh_size(self) -> bool:
        """Re-read the screen size (RandR may have changed it); True if it changed."""
        size = self._query_size()
        if size == self._size:
            return False
        self._size = size
        # mss sizes its shared-memory segment for the screen it first saw.
        self._mss.close()
        self._mss = MSS(display=self.display_name, backend=self._backend)
        return True

    def damaged(self) -> Rect | None:
        """Where the screen may have changed since the last call (None: nowhere).

        Without the DAMAGE extension every call answers "the whole screen".
        """
        width, height = self._size
        if self._damage is None:
            return Rect(0, 0, width, height)
        # Reset first, then collect: whatever was drawn before the reset has reported by
        # the time the round trip returns; what comes after is reported next time.
        self._x.damage_subtract(self._damage, X.NONE, X.NONE)
        self._x.sync()
        box: Rect | None = None
        damage_event = self._x.extension_event.DamageNotify
        cursor_event = getattr(self._x.extension_event, "DisplayCursorNotify", None)
        while self._x.pending_events():
            event = self._x.next_event()
            if event.type == damage_event:
                area = event.area
                box = union(box, Rect(area.x, area.y, area.width, area.height))
            elif (event.type, getattr(event, "sub_code", None)) == cursor_event:
                self.cursor_changed = True
        return box

    def grab(self, area: Rect | None = None) -> np.ndarray:
        """The screen as ``(height, width, 4)`` B,G,R,X bytes.

        With ``area``, only that part is read from the X server; the rest of the array
        keeps what earlier calls read, which is current wherever DAMAGE reported
        nothing. The array is reused between calls: copy what must be kept.
        """
        width, height = self._size
        if area is None or self._frame is None or self._frame.shape[:2] != (height, width):
            shot = self._mss.grab({"left": 0, "top": 0, "width": width, "height": height})
            self._frame = np.frombuffer(shot.raw, np.uint8).reshape(height, width, 4)
            return self._frame
        x0, y0 = max(area.x, 0), max(area.y, 0)
        x1, y1 = min(area.x + area.width, width), min(area.y + area.height, height)
        if x1 > x0 and y1 > y0:
            region = {"left": x0, "top": y0, "width": x1 - x0, "height": y1 - y0}
            shot = self._mss.grab(region)
            pixels = np.frombuffer(shot.raw, np.uint8).reshape(y1 - y0, x1 - x0, 4)
            self._frame[y0:y1, x0:x1] = pixels
        return self._frame

    def cursor(self) -> CursorImage | None:
        """The current pointer shape (XFixes), or None where XFixes is missing."""
        self.cursor_changed = False
        if not self._has_xfixes:
            return None
        try:
            reply = self._x.xfixes_get_cursor_image(self._root)
        except XError:
            return None
        argb = np.array(reply.cursor_image, np.uint32).reshape(reply.height, reply.width)
        pixels = argb.astype("<u4").view(np.uint8).reshape(reply.height, reply.width, 4).copy()
        alpha = pixels[:, :, 3:4].astype(np.uint16)
        # XFixes gives premultiplied alpha; RFB wants the colour as shown when opaque.
        with np.errstate(divide="ignore", invalid="ignore"):
            straight = np.where(alpha > 0, pixels[:, :, :3] * 255 // np.maximum(alpha, 1), 0)
        pixels[:, :, :3] = np.minimum(straight, 255).astype(np.uint8)
        return CursorImage(pixels, reply.xhot, reply.yhot, reply.cursor_serial)

    def close(self) -> None:
        self._mss.close()
        self._x.close()
