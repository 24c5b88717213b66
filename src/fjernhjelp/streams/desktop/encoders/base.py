"""The one small interface every encoder implements (one encoder per file)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from fjernhjelp.streams.desktop.pixels import PixelFormat
from fjernhjelp.streams.desktop.rfb import rect_header


@dataclass(frozen=True, slots=True)
class Rect:
    x: int
    y: int
    width: int
    height: int

    @property
    def area(self) -> int:
        return self.width * self.height

    def slice(self, frame: np.ndarray) -> np.ndarray:
        return frame[self.y : self.y + self.height, self.x : self.x + self.width]


@dataclass(frozen=True, slots=True)
class EncodedRect:
    rect: Rect
    encoding: int
    payload: bytes

    def to_bytes(self) -> bytes:
        r = self.rect
        return rect_header(r.x, r.y, r.width, r.height, self.encoding) + self.payload


@dataclass(frozen=True, slots=True)
class Settings:
    """What the client asked for through pseudo-encodings."""

    format: PixelFormat
    quality: int | None = None  # JPEG quality level 0..9, None: lossless only
    compression: int = 2  # zlib effort level 0..9


class Encoder(Protocol):
    # Read-only: each encoder class fixes its number as a class attribute (an Encoding).
    @property
    def encoding(self) -> int: ...

    def encode(self, frame: np.ndarray, rect: Rect, settings: Settings) -> list[EncodedRect]:
        """Encode ``rect`` of ``frame`` (B,G,R,X pixels) as one or more rectangles."""
        ...


def colour_values(region: np.ndarray) -> np.ndarray:
    """B,G,R,X pixels as 0x00RRGGBB values (the padding byte ignored)."""
    return region.view(np.uint32)[..., 0] & 0xFFFFFF


def distinct_colours(values: np.ndarray, limit: int) -> np.ndarray | None:
    """The sorted distinct values, or None if there are more than ``limit``.

    A plain sort: numpy's hash-based ``unique`` is ten times slower on 64x64 tiles.
    """
    flat = values.ravel()
    first = flat[0]
    if (flat == first).all():
        return flat[:1].copy()
    ordered = np.sort(flat)
    starts = np.empty(len(ordered), bool)
    starts[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=starts[1:])
    if np.count_nonzero(starts) > limit:
        return None
    return ordered[starts]


def zlib_level(compression: int) -> int:
    # Level 0 would store without compression; the cheapest useful effort is 1, and
    # beyond 6 zlib costs much more CPU for little on screen content.
    return max(1, min(compression, 6))
