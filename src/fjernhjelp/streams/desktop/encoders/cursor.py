"""Cursor pseudo-encoding: the viewer draws the real pointer shape locally."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fjernhjelp.streams.desktop.encoders.base import EncodedRect, Rect, Settings
from fjernhjelp.streams.desktop.rfb import Encoding


@dataclass(frozen=True, slots=True)
class CursorImage:
    """A pointer shape: straight (not premultiplied) B,G,R,A pixels and its hotspot."""

    pixels: np.ndarray  # (h, w, 4) uint8
    hot_x: int
    hot_y: int
    serial: int


def encode_cursor(cursor: CursorImage | None, settings: Settings) -> EncodedRect:
    if cursor is None or cursor.pixels.size == 0:
        return EncodedRect(Rect(0, 0, 0, 0), Encoding.CURSOR, b"")  # an invisible pointer
    h, w = cursor.pixels.shape[:2]
    colours = settings.format.pack(cursor.pixels).tobytes()
    # RFB's cursor is one bit of transparency per pixel; half-transparent counts as shown.
    mask = np.packbits(cursor.pixels[:, :, 3] >= 128, axis=1).tobytes()
    hot_x, hot_y = min(cursor.hot_x, max(w - 1, 0)), min(cursor.hot_y, max(h - 1, 0))
    return EncodedRect(Rect(hot_x, hot_y, w, h), Encoding.CURSOR, colours + mask)
