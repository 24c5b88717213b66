"""Scripted screen content for bench/desktop.py, drawn straight onto an Xvfb root window.

Each scene changes the screen the way a kind of office work does: a terminal or
document scrolling (the X server copies the area up and draws one new line), a window
dragged across the desktop, a full-screen photo replaced, a still screen, and a small
window that changes colour on every key press (for input-to-screen latency).
"""

from __future__ import annotations

import threading
import time

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from tests.desktop.xvfb import photo
from Xlib import X
from Xlib import display as xdisplay
from Xlib.error import ConnectionClosedError

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
STEP = 1 / 30  # scenes change 30 times a second
DESKTOP = 0x3A6EA5
WORDS = [
    "pasient",
    "journal",
    "timebok",
    "resept",
    "henvisning",
    "epikrise",
    "lab",
    "svar",
    "melding",
    "konsultasjon",
    "kontroll",
    "innkalling",
    "faktura",
    "takst",
    "frikort",
    "helsenett",
]


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.truetype(FONT, size)
    except OSError:
        return ImageFont.load_default(size)


def text_page(width: int, lines: int, line_height: int = 20, seed: int = 2) -> np.ndarray:
    rng = np.random.default_rng(seed)
    image = Image.new("RGB", (width, lines * line_height), "white")
    draw = ImageDraw.Draw(image)
    font = _font(15)
    for i in range(lines):
        words = " ".join(rng.choice(WORDS, size=int(rng.integers(4, 14))))
        colour = (20, 20, 20) if i % 7 else (30, 60, 160)
        draw.text((12, i * line_height + 2), f"{i:5d}  {words}", fill=colour, font=font)
    return np.asarray(image)


class Scenes:
    def __init__(self, display: str, width: int, height: int) -> None:
        self.width, self.height = width, height
        self._x = xdisplay.Display(display)
        self._root = self._x.screen().root
        self._gc = self._root.create_gc(foreground=DESKTOP)
        self._scroll_area = (160, 90, 1600, 900)
        self._page = text_page(self._scroll_area[2], 45 + 30 * 60)
        self._photos = [photo(width, height, seed=s) for s in (11, 12)]
        self._window = np.array(photo(480, 320, seed=13))
        self._window[:28] = (40, 70, 140)  # a title bar
        self._window[28:120, 10:470] = 255
        self._target: int | None = None  # the latency target's window id
        # The scrolling document is a real window, so x11vnc's scroll detection (which
        # watches applications' XCopyArea on their windows) gets its chance too.
        x, y, w, h = self._scroll_area
        self._document = self._root.create_window(
            x, y, w, h, 0, X.CopyFromParent, background_pixel=0xFFFFFF
        )
        self._document_gc = self._document.create_gc()

    # -- drawing helpers --------------------------------------------------------------

    def _put(
        self, image: np.ndarray, x: int, y: int, drawable: object = None, gc: object = None
    ) -> None:
        drawable = drawable or self._root
        gc = gc or self._gc
        h, w = image.shape[:2]
        bgrx = np.zeros((h, w, 4), np.uint8)
        bgrx[:, :, :3] = image[:, :, ::-1]
        strip = max(1, 240_000 // (w * 4))
        for top in range(0, h, strip):
            rows = bgrx[top : top + strip]
            drawable.put_image(  # type: ignore[attr-defined]
                gc, x, y + top, w, len(rows), X.ZPixmap, 24, 0, rows.tobytes()
            )

    def _fill(self, colour: int, x: int, y: int, w: int, h: int) -> None:
        self._gc.change(foreground=colour)
        self._root.fill_rectangle(self._gc, x, y, w, h)

    def prepare(self, name: str) -> None:
        """Draw the starting picture of scene ``name``."""
        self.desktop()
        if name == "scroll":
            self._document.map()
            self._x.sync()
            self._put(self._page[: self._scroll_area[3]], 0, 0, self._document, self._document_gc)
            self._x.sync()

    def finish(self, name: str) -> None:
        if name == "scroll":
            self._document.unmap()
            self._x.sync()

    def desktop(self) -> None:
        """The starting picture of every scene: a plain desktop with a document."""
        self._fill(DESKTOP, 0, 0, self.width, self.height)
        x, y, _w, h = self._scroll_area
        self._put(self._page[:h], x, y)
        self._x.sync()

    # -- scenes -----------------------------------------------------------------------

    def run(self, name: str, stop: threading.Event) -> int:
        """Play scene ``name`` until ``stop``; returns the number of screen changes."""
        steps = 0
        next_at = time.monotonic()
        while not stop.is_set():
            getattr(self, f"_step_{name}")(steps)
            self._x.sync()
            steps += 1
            next_at += 0.5 if name == "photo" else STEP
            delay = next_at - time.monotonic()
            if delay > 0:
                stop.wait(delay)
        return steps

    def _step_still(self, step: int) -> None:
        pass

    def _step_scroll(self, step: int) -> None:
        _x, _y, w, h = self._scroll_area
        line = 20
        doc, gc = self._document, self._document_gc
        doc.copy_area(gc, doc, 0, line, w, h - line, 0, 0)
        top = (step + 1) * line % (len(self._page) - h)
        self._put(self._page[top + h - line : top + h], 0, h - line, doc, gc)

    def _window_at(self, step: int) -> tuple[int, int]:
        span_x, span_y = self.width - 480, self.height - 320
        px, py = (step * 12) % (2 * span_x), (step * 6) % (2 * span_y)
        return (px if px < span_x else 2 * span_x - px), (py if py < span_y else 2 * span_y - py)

    def _step_moving(self, step: int) -> None:
        old = self._window_at(step - 1) if step else None
        new = self._window_at(step)
        self._put(self._window, *new)
        if old is not None:
            for rect in _uncovered(old, new, 480, 320):
                self._fill(DESKTOP, *rect)

    def _step_photo(self, step: int) -> None:
        self._put(self._photos[step % 2], 0, 0)

    # -- the latency target -------------------------------------------------------------

    TARGET = (1600, 40, 200, 200)

    def start_target(self) -> threading.Thread:
        """A window that changes colour on each key press it receives (own connection)."""
        ready = threading.Event()

        def serve() -> None:
            d = xdisplay.Display(self._x.get_display_name())
            root = d.screen().root
            x, y, w, h = self.TARGET
            window = root.create_window(
                x,
                y,
                w,
                h,
                0,
                X.CopyFromParent,
                background_pixel=0x202020,
                event_mask=X.KeyPressMask | X.ExposureMask,
            )
            window.map()
            d.sync()
            self._target = window.id
            gc = window.create_gc(foreground=0xFFFFFF)
            colour = 0
            window.set_input_focus(X.RevertToParent, X.CurrentTime)
            d.sync()
            ready.set()
            while True:
                try:
                    event = d.next_event()
                except ConnectionClosedError:
                    return  # the X server has stopped: the bench is over
                if event.type == X.KeyPress:
                    colour = (colour + 0x3F7F1F) & 0xFFFFFF
                    gc.change(foreground=colour)
                    window.fill_rectangle(gc, 0, 0, w, h)
                    d.flush()

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        ready.wait(10)
        return thread

    def focus_target(self) -> None:
        """Give the target the keyboard focus again (a window shown since may have it)."""
        if self._target is not None:
            self._x.set_input_focus(self._target, X.RevertToParent, X.CurrentTime)
            self._x.sync()


def _uncovered(
    old: tuple[int, int], new: tuple[int, int], w: int, h: int
) -> list[tuple[int, int, int, int]]:
    """Parts of the old rectangle the new one does not cover (at most two strips)."""
    (ox, oy), (nx, ny) = old, new
    rects = []
    if ny > oy:
        rects.append((ox, oy, w, ny - oy))
    elif ny < oy:
        rects.append((ox, ny + h, w, oy - ny))
    top, bottom = max(oy, ny), min(oy, ny) + h
    if nx > ox:
        rects.append((ox, top, nx - ox, bottom - top))
    elif nx < ox:
        rects.append((nx + w, top, ox - nx, bottom - top))
    return [r for r in rects if r[2] > 0 and r[3] > 0]
