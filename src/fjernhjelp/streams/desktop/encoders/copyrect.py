"""CopyRect: the client copies pixels it already has (scrolling)."""

from __future__ import annotations

import struct

from fjernhjelp.streams.desktop.encoders.base import EncodedRect, Rect
from fjernhjelp.streams.desktop.rfb import Encoding


def copy_rect(dest: Rect, src_x: int, src_y: int) -> EncodedRect:
    return EncodedRect(dest, Encoding.COPY_RECT, struct.pack(">HH", src_x, src_y))
