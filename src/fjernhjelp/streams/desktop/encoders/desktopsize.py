"""DesktopSize and ExtendedDesktopSize: the screen changed size (or the first report)."""

from __future__ import annotations

import struct

from fjernhjelp.streams.desktop.encoders.base import EncodedRect, Rect
from fjernhjelp.streams.desktop.rfb import Encoding

# ExtendedDesktopSize reasons and statuses (the rectangle's x and y).
REASON_SERVER, REASON_CLIENT = 0, 1
STATUS_OK, STATUS_PROHIBITED = 0, 1


def desktop_size(width: int, height: int) -> EncodedRect:
    return EncodedRect(Rect(0, 0, width, height), Encoding.DESKTOP_SIZE, b"")


def extended_desktop_size(
    width: int, height: int, reason: int = REASON_SERVER, status: int = STATUS_OK
) -> EncodedRect:
    # One screen covering the framebuffer; the agent does not resize on request.
    screens = struct.pack(">B3x", 1) + struct.pack(">IHHHHI", 0, 0, 0, width, height, 0)
    return EncodedRect(Rect(reason, status, width, height), Encoding.EXTENDED_DESKTOP_SIZE, screens)
