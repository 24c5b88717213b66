"""Tight: solid fills, palettes with zlib for text, JPEG for photo-like areas.

The rectangle is cut into 64x64 tiles. Each tile is classified by its number of
colours: one colour is a fill, a few are a palette (lossless, 1 bit or 1 byte per pixel
before zlib), many are "photo" and go as JPEG when the client announced a quality level
(otherwise lossless zlib of the pixels). Neighbouring tiles of the same kind are merged
so a full-screen photo is a handful of JPEGs, not hundreds.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np
import simplejpeg

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
MAX_PALETTE = 256  # antialiased text in a tile stays under this; photos do not
MAX_WIDTH = 2048  # the Tight specification's limit on a rectangle's width

# JPEG quality for the client's quality levels 0..9 (chosen by eye on screen content).
JPEG_QUALITY = (15, 25, 35, 45, 55, 65, 75, 82, 88, 95)

STREAM_COPY, STREAM_MONO, STREAM_PALETTE = 0, 1, 2
FILL, JPEG = 0x80, 0x90
FILTER_FLAG, PALETTE_FILTER = 0x40, 1
RAW_BELOW = 12  # Tight sends data shorter than this without zlib


def compact_length(n: int) -> bytes:
    if n >= 1 << 22:
        raise ValueError("Tight data too long for a compact length")
    out = bytearray([n & 0x7F])
    if n > 0x7F:
        out[0] |= 0x80
        out.append((n >> 7) & 0x7F)
        if n > 0x3FFF:
            out[1] |= 0x80
            out.append(n >> 14)
    return bytes(out)


@dataclass(slots=True)
class _Segment:
    kind: str  # "fill", "palette" or "photo"
    rect: Rect
    colours: np.ndarray  # sorted 0x00RRGGBB values (fill and palette)


class TightEncoder:
    encoding = Encoding.TIGHT

    def __init__(self) -> None:
        self._streams: list[zlib._Compress | None] = [None] * 4
        self._levels = [0] * 4

    def encode(self, frame: np.ndarray, rect: Rect, settings: Settings) -> list[EncodedRect]:
        rows = [self._segments(frame, r) for r in _tile_rows(rect)]
        # Lossless photo areas stay one tile row high so their zlib data stays small.
        tall = {"fill", "photo"} if _uses_jpeg(settings) else {"fill"}
        return [self._encode_segment(frame, s, settings) for s in _merge_vertically(rows, tall)]

    def _segments(self, frame: np.ndarray, row: Rect) -> list[_Segment]:
        segments: list[_Segment] = []
        for i, colours in enumerate(_tile_colours(colour_values(row.slice(frame)))):
            x = row.x + i * TILE
            tile = Rect(x, row.y, min(TILE, row.x + row.width - x), row.height)
            kind = "photo" if colours is None else "fill" if len(colours) == 1 else "palette"
            if colours is None:
                colours = np.empty(0, np.uint32)
            last = segments[-1] if segments else None
            if last is not None and last.rect.width + tile.width <= MAX_WIDTH:
                grown = Rect(last.rect.x, row.y, last.rect.width + tile.width, row.height)
                if kind == last.kind == "photo":
                    last.rect = grown
                    continue
                if kind == last.kind == "fill" and last.colours[0] == colours[0]:
                    last.rect = grown
                    continue
                if kind == last.kind == "palette":
                    union = distinct_colours(np.concatenate((last.colours, colours)), MAX_PALETTE)
                    if union is not None:
                        last.rect, last.colours = grown, union
                        continue
            segments.append(_Segment(kind, tile, colours))
        return segments

    def _encode_segment(
        self, frame: np.ndarray, segment: _Segment, settings: Settings
    ) -> EncodedRect:
        rect, fmt = segment.rect, settings.format
        region = rect.slice(frame)
        if segment.kind == "fill":
            pixel = _colour_pixels(segment.colours)
            return EncodedRect(rect, self.encoding, bytes([FILL]) + _tpixels(pixel, settings))
        if segment.kind == "palette":
            return self._palette(region, rect, segment.colours, settings)
        quality = _jpeg_quality(settings)
        if quality is not None:
            jpeg = simplejpeg.encode_jpeg(
                np.ascontiguousarray(region),
                quality=JPEG_QUALITY[quality],
                colorspace="BGRX",
                colorsubsampling="444" if quality >= 9 else "420",
                fastdct=True,
            )
            payload = bytes([JPEG]) + compact_length(len(jpeg)) + jpeg
            return EncodedRect(rect, self.encoding, payload)
        data = fmt.pack_tight(region).tobytes()
        return EncodedRect(rect, self.encoding, self._basic(STREAM_COPY, b"", data, settings))

    def _palette(
        self, region: np.ndarray, rect: Rect, colours: np.ndarray, settings: Settings
    ) -> EncodedRect:
        values = colour_values(region)
        index = np.searchsorted(colours, values).astype(np.uint8)
        if len(colours) == 2:
            data = np.packbits(index, axis=1).tobytes()  # rows padded to whole bytes
            stream = STREAM_MONO
        else:
            data = index.tobytes()
            stream = STREAM_PALETTE
        header = bytes([PALETTE_FILTER, len(colours) - 1]) + _tpixels(
            _colour_pixels(colours), settings
        )
        return EncodedRect(rect, self.encoding, self._basic(stream, header, data, settings))

    def _basic(self, stream: int, filter_header: bytes, data: bytes, settings: Settings) -> bytes:
        control = stream << 4 | (FILTER_FLAG if filter_header else 0)
        if len(data) < RAW_BELOW:
            return bytes([control]) + filter_header + data
        level = zlib_level(settings.compression)
        compressor = self._streams[stream]
        if compressor is None or self._levels[stream] != level:
            # A new zlib stream: tell the client to reset its inflater for this stream.
            compressor = self._streams[stream] = zlib.compressobj(level)
            self._levels[stream] = level
            control |= 1 << stream
        packed = compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)
        return bytes([control]) + filter_header + compact_length(len(packed)) + packed

    def reset(self) -> None:
        self._streams = [None] * 4


def _tile_colours(values: np.ndarray) -> list[np.ndarray | None]:
    """Distinct colours of each 64-pixel-wide tile of a strip (None: more than allowed).

    All tiles of the strip are sorted in one call; per-tile calls cost more in overhead
    than in sorting. A quarter of the pixels is looked at first: a tile whose sample
    already has too many colours is a photo without sorting the rest.
    """
    height, width = values.shape
    count = -(-width // TILE)
    if width % TILE:  # repeat the last column: adds no colour
        values = np.pad(values, ((0, 0), (0, count * TILE - width)), mode="edge")
    tiles = values.reshape(height, count, TILE).transpose(1, 0, 2)
    many = _distinct_counts(tiles[:, ::2, ::2].reshape(count, -1)) > MAX_PALETTE
    result: list[np.ndarray | None] = [None] * count
    few = np.flatnonzero(~many)
    if len(few):
        ordered = np.sort(tiles[few].reshape(len(few), -1), axis=1)
        starts = _starts(ordered)
        counts = starts.sum(axis=1)
        for k, i in enumerate(few.tolist()):
            if counts[k] <= MAX_PALETTE:
                result[i] = ordered[k][starts[k]]
    return result


def _starts(ordered: np.ndarray) -> np.ndarray:
    """Where each run of equal values begins in the sorted rows of ``ordered``."""
    starts = np.ones(ordered.shape, bool)
    np.not_equal(ordered[:, 1:], ordered[:, :-1], out=starts[:, 1:])
    return starts


def _distinct_counts(rows: np.ndarray) -> np.ndarray:
    # ndarray.sum is typed Any (it may be a scalar); along an axis it is an array.
    counts: np.ndarray = _starts(np.sort(rows, axis=1)).sum(axis=1)
    return counts


def _tile_rows(rect: Rect) -> list[Rect]:
    return [
        Rect(rect.x, y, rect.width, min(TILE, rect.y + rect.height - y))
        for y in range(rect.y, rect.y + rect.height, TILE)
    ]


def _uses_jpeg(settings: Settings) -> bool:
    return _jpeg_quality(settings) is not None


def _jpeg_quality(settings: Settings) -> int | None:
    """The JPEG quality level (0..9) when rectangles may go as JPEG, else None."""
    if settings.quality is None or settings.format.bits_per_pixel < 16:
        return None
    return settings.quality


def _merge_vertically(rows: list[list[_Segment]], kinds: set[str]) -> list[_Segment]:
    """Join segments of ``kinds`` (fills of one colour, photo areas) that line up."""
    done: list[_Segment] = []
    open_: dict[tuple[int, int, str, int], _Segment] = {}
    for row in rows:
        next_open: dict[tuple[int, int, str, int], _Segment] = {}
        for seg in row:
            colour = int(seg.colours[0]) if seg.kind == "fill" else -1
            key = (seg.rect.x, seg.rect.width, seg.kind, colour)
            above = open_.pop(key, None) if seg.kind in kinds else None
            if above is not None and above.rect.y + above.rect.height == seg.rect.y:
                r = above.rect
                above.rect = Rect(r.x, r.y, r.width, r.height + seg.rect.height)
                next_open[key] = above
            else:
                if above is not None:
                    done.append(above)
                if seg.kind in kinds:
                    next_open[key] = seg
                else:
                    done.append(seg)
        done.extend(open_.values())
        open_ = next_open
    done.extend(open_.values())
    return done


def _colour_pixels(colours: np.ndarray) -> np.ndarray:
    """0x00RRGGBB values -> a (1, n, 4) B,G,R,X pixel row."""
    return colours.astype("<u4").view(np.uint8).reshape(1, len(colours), 4)


def _tpixels(pixels: np.ndarray, settings: Settings) -> bytes:
    return settings.format.pack_tight(pixels).tobytes()
