"""ZRLE: lossless 64x64 tiles (solid, packed palette or raw) in one zlib stream.

Kept beside Tight because many VNC clients (vncdotool among them) decode ZRLE but not
Tight. Tiles with more than 16 colours go raw; the zlib stream still shrinks them.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np

from fjernhjelp.streams.desktop.encoders.base import (
    EncodedRect,
    Rect,
    Settings,
    colour_values,
    distinct_colours,
    zlib_level,
)
from fjernhjelp.streams.desktop.rfb import Encoding

TILE = 64
RAW, SOLID = 0, 1


def _bits_for(colours: int) -> int:
    return 1 if colours <= 2 else 2 if colours <= 4 else 4


def pack_indices(index: np.ndarray, bits: int) -> bytes:
    """Palette indices, ``bits`` each, most significant first, rows padded to bytes."""
    per_byte = 8 // bits
    h, w = index.shape
    padded = np.zeros((h, -(-w // per_byte) * per_byte), np.uint8)
    padded[:, :w] = index
    groups = padded.reshape(h, -1, per_byte)
    shifts = np.arange(per_byte - 1, -1, -1, dtype=np.uint8) * bits
    # numpy types ufunc.reduce as Any; along an axis it gives an array.
    packed: np.ndarray = np.bitwise_or.reduce(groups << shifts, axis=2)
    return packed.astype(np.uint8).tobytes()


class ZrleEncoder:
    encoding = Encoding.ZRLE

    def __init__(self) -> None:
        self._stream: zlib._Compress | None = None

    def encode(self, frame: np.ndarray, rect: Rect, settings: Settings) -> list[EncodedRect]:
        if self._stream is None:
            # One stream for the whole connection, as the specification requires.
            self._stream = zlib.compressobj(zlib_level(settings.compression))
        parts = []
        for y in range(rect.y, rect.y + rect.height, TILE):
            for x in range(rect.x, rect.x + rect.width, TILE):
                tile = Rect(
                    x, y, min(TILE, rect.x + rect.width - x), min(TILE, rect.y + rect.height - y)
                )
                parts.append(self._tile(tile.slice(frame), settings))
        data = self._stream.compress(b"".join(parts)) + self._stream.flush(zlib.Z_SYNC_FLUSH)
        return [EncodedRect(rect, self.encoding, struct.pack(">I", len(data)) + data)]

    def _tile(self, region: np.ndarray, settings: Settings) -> bytes:
        fmt = settings.format
        values = colour_values(region)
        colours = distinct_colours(values, 16)
        if colours is None:
            return bytes([RAW]) + fmt.pack_compact(region).tobytes()
        if len(colours) == 1:
            return bytes([SOLID]) + fmt.pack_compact(region[:1, :1]).tobytes()
        pixels = colours.astype("<u4").view(np.uint8).reshape(1, len(colours), 4)
        index = np.searchsorted(colours, values).astype(np.uint8)
        return (
            bytes([len(colours)])
            + fmt.pack_compact(pixels).tobytes()
            + pack_indices(index, _bits_for(len(colours)))
        )
