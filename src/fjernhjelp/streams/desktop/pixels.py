"""Pixel formats: what the client asked for, and turning captured pixels into it.

Captured frames are ``(height, width, 4)`` uint8 arrays in X's little-endian 32-bit
layout (bytes B, G, R, padding). Everything the agent sends passes through
``PixelFormat.pack`` so every encoder honours the client's SetPixelFormat.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

_STRUCT = struct.Struct(">BBBBHHHBBB3x")


class BadPixelFormat(ValueError):
    """A SetPixelFormat the agent will not serve (colour maps, odd sizes, overlapping bits)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class PixelFormat:
    bits_per_pixel: int
    depth: int
    big_endian: bool
    true_colour: bool
    red_max: int
    green_max: int
    blue_max: int
    red_shift: int
    green_shift: int
    blue_shift: int

    @classmethod
    def parse(cls, data: bytes) -> PixelFormat:
        bpp, depth, big, true, rmax, gmax, bmax, rsh, gsh, bsh = _STRUCT.unpack(data)
        fmt = cls(bpp, depth, bool(big), bool(true), rmax, gmax, bmax, rsh, gsh, bsh)
        fmt.validate()
        return fmt

    def to_bytes(self) -> bytes:
        return _STRUCT.pack(
            self.bits_per_pixel,
            self.depth,
            int(self.big_endian),
            int(self.true_colour),
            self.red_max,
            self.green_max,
            self.blue_max,
            self.red_shift,
            self.green_shift,
            self.blue_shift,
        )

    def validate(self) -> None:
        if not self.true_colour:
            raise BadPixelFormat("colour-map pixel formats are not supported")
        if self.bits_per_pixel not in (8, 16, 32):
            raise BadPixelFormat(f"bits-per-pixel {self.bits_per_pixel} is not 8, 16 or 32")
        if not 1 <= self.depth <= self.bits_per_pixel:
            raise BadPixelFormat(f"depth {self.depth} does not fit {self.bits_per_pixel} bits")
        used = 0
        for name, top, shift in self._channels():
            if top < 1 or top & (top + 1):
                raise BadPixelFormat(f"{name} max {top} is not 2^n - 1")
            bits = top.bit_length()
            if shift + bits > self.bits_per_pixel:
                raise BadPixelFormat(f"{name} shift {shift} puts bits outside the pixel")
            mask = top << shift
            if used & mask:
                raise BadPixelFormat("colour channels overlap")
            used |= mask

    def _channels(self) -> tuple[tuple[str, int, int], ...]:
        return (
            ("red", self.red_max, self.red_shift),
            ("green", self.green_max, self.green_shift),
            ("blue", self.blue_max, self.blue_shift),
        )

    @property
    def bytes_per_pixel(self) -> int:
        return self.bits_per_pixel // 8

    @property
    def is_rgb888_32(self) -> bool:
        """32 bpp with 8-bit channels on byte boundaries: a byte shuffle, no arithmetic."""
        return (
            self.bits_per_pixel == 32
            and (self.red_max, self.green_max, self.blue_max) == (255, 255, 255)
            and all(s % 8 == 0 for s in (self.red_shift, self.green_shift, self.blue_shift))
        )

    def pack(self, bgrx: np.ndarray) -> np.ndarray:
        """Pixels ``(h, w, 4)`` B,G,R,X -> ``(h, w, bytes_per_pixel)`` uint8 in this format."""
        h, w = bgrx.shape[:2]
        if self.is_rgb888_32:
            out = np.zeros((h, w, 4), np.uint8)
            for src, shift in ((2, self.red_shift), (1, self.green_shift), (0, self.blue_shift)):
                index = shift // 8
                out[:, :, 3 - index if self.big_endian else index] = bgrx[:, :, src]
            return out
        value = np.zeros((h, w), np.uint32)
        for src, top, shift in (
            (2, self.red_max, self.red_shift),
            (1, self.green_max, self.green_shift),
            (0, self.blue_max, self.blue_shift),
        ):
            channel = bgrx[:, :, src].astype(np.uint32)
            if top != 255:
                channel = (channel * top + 127) // 255
            value |= channel << shift
        dtype = {8: "u1", 16: "u2", 32: "u4"}[self.bits_per_pixel]
        order = ">" if self.big_endian else "<"
        packed = value.astype(order + dtype)
        return packed.view(np.uint8).reshape(h, w, self.bytes_per_pixel)

    def compact_drop(self) -> int | None:
        """Which byte of a packed 32-bit pixel the compact 3-byte forms may drop, if any.

        ZRLE's CPIXEL drops the unused byte when all colour bits fit in the low or the
        high three bytes of a 32 bpp, depth <= 24 pixel.
        """
        if self.bits_per_pixel != 32 or self.depth > 24:
            return None
        mask = 0
        for _name, top, shift in self._channels():
            mask |= top << shift
        if mask < 1 << 24:  # the most significant byte is unused
            return 0 if self.big_endian else 3
        if mask & 0xFF == 0:  # the least significant byte is unused
            return 3 if self.big_endian else 0
        return None

    def pack_compact(self, bgrx: np.ndarray) -> np.ndarray:
        """ZRLE CPIXELs: ``(h, w, 3 or bytes_per_pixel)``."""
        packed = self.pack(bgrx)
        drop = self.compact_drop()
        if drop is None:
            return packed
        keep = [i for i in range(4) if i != drop]
        return packed[:, :, keep]

    @property
    def tight_rgb24(self) -> bool:
        """Tight's TPIXEL is three bytes R, G, B for 8-bit channels at depth 24."""
        return (
            self.bits_per_pixel == 32
            and self.depth == 24
            and (self.red_max, self.green_max, self.blue_max) == (255, 255, 255)
        )

    def pack_tight(self, bgrx: np.ndarray) -> np.ndarray:
        """Tight TPIXELs: R, G, B bytes, or the client's own pixel otherwise."""
        if self.tight_rgb24:
            return bgrx[:, :, 2::-1]
        return self.pack(bgrx)


# What the agent announces in ServerInit: exactly the captured layout, so a client that
# never sends SetPixelFormat gets frames without conversion.
NATIVE = PixelFormat(32, 24, False, True, 255, 255, 255, 16, 8, 0)
