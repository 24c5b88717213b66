"""Pixel formats, change detection, scroll detection and encoder choices, on arrays."""

from __future__ import annotations

import zlib

import numpy as np
import pytest
import simplejpeg

from fjernhjelp.streams.desktop import damage
from fjernhjelp.streams.desktop.encoders.base import Rect, Settings
from fjernhjelp.streams.desktop.encoders.tight import TightEncoder, compact_length
from fjernhjelp.streams.desktop.encoders.zrle import pack_indices
from fjernhjelp.streams.desktop.pixels import NATIVE, BadPixelFormat, PixelFormat
from tests.desktop.xvfb import photo

NOVNC = PixelFormat(32, 24, False, True, 255, 255, 255, 0, 8, 16)


def bgrx(rgb: np.ndarray) -> np.ndarray:
    out = np.zeros((*rgb.shape[:2], 4), np.uint8)
    out[:, :, :3] = rgb[:, :, ::-1]
    return out


def read_compact(payload: bytes, at: int) -> tuple[int, int]:
    """Tight's compact length at ``at``: (length, offset of the data)."""
    length = 0
    for i in range(3):
        byte = payload[at + i]
        length |= (byte & 0x7F if i < 2 else byte) << (7 * i)
        if i < 2 and not byte & 0x80:
            return length, at + i + 1
    return length, at + 3


def test_novnc_format_is_r_g_b_x_bytes_and_native_is_unchanged() -> None:
    frame = bgrx(np.array([[[1, 2, 3], [250, 128, 7]]], np.uint8))
    assert NOVNC.pack(frame).tobytes() == bytes([1, 2, 3, 0, 250, 128, 7, 0])
    assert NATIVE.pack(frame).tobytes() == frame.tobytes()


def test_tight_and_zrle_compact_pixels() -> None:
    frame = bgrx(np.array([[[10, 20, 30]]], np.uint8))
    assert NOVNC.pack_tight(frame).tobytes() == bytes([10, 20, 30])
    assert NOVNC.pack_compact(frame).tobytes() == bytes([10, 20, 30])
    high = PixelFormat(32, 24, False, True, 255, 255, 255, 24, 16, 8)  # colour in the top bytes
    assert high.pack_compact(frame).tobytes() == bytes([30, 20, 10])
    rgb565 = PixelFormat(16, 16, False, True, 31, 63, 31, 11, 5, 0)
    assert rgb565.pack_compact(frame).shape[-1] == 2


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ((8, 8, False, False, 7, 7, 3, 0, 3, 6), "colour-map"),
        ((24, 24, False, True, 255, 255, 255, 16, 8, 0), "bits-per-pixel"),
        ((32, 33, False, True, 255, 255, 255, 16, 8, 0), "depth"),
        ((32, 24, False, True, 200, 255, 255, 16, 8, 0), "2^n - 1"),
        ((16, 16, False, True, 255, 255, 255, 16, 8, 0), "outside"),
        ((32, 24, False, True, 255, 255, 255, 0, 4, 16), "overlap"),
        ((32, 24, False, True, 0, 255, 255, 0, 8, 16), "2^n - 1"),
    ],
)
def test_absurd_pixel_formats_are_refused(fields: tuple, reason: str) -> None:
    with pytest.raises(BadPixelFormat, match=reason.replace("^", r"\^")):
        PixelFormat(*fields).validate()


def test_still_frame_has_no_dirty_tiles_and_one_pixel_marks_one_tile() -> None:
    frame = bgrx(photo(300, 200))
    assert not damage.dirty_tiles(frame, frame.copy()).any()
    changed = frame.copy()
    changed[130, 250, 0] ^= 1
    grid = damage.dirty_tiles(frame, changed)
    assert grid.shape == (4, 5)
    assert list(zip(*np.nonzero(grid), strict=True)) == [(2, 3)]
    assert damage.tiles_to_rects(grid, 300, 200) == [Rect(192, 128, 64, 64)]


def test_dirty_tiles_merge_into_few_rectangles_clipped_to_the_screen() -> None:
    grid = np.zeros((4, 5), bool)
    grid[1:4, 1:5] = True  # a 4x3 block reaching the right and bottom edges
    rects = damage.tiles_to_rects(grid, 300, 200)
    assert rects == [Rect(64, 64, 236, 136)]


def test_a_vertical_scroll_is_found_and_verified() -> None:
    page = bgrx(photo(400, 700, seed=3))
    before = np.zeros((480, 640, 4), np.uint8)
    after = before.copy()
    before[40:440, 100:500] = page[0:400]
    after[40:440, 100:500] = page[57:457]  # scrolled up by 57 rows
    grid = damage.dirty_tiles(before, after)
    box = damage.bounding_box(grid, 640, 480)
    assert box is not None
    scroll = damage.find_scroll(before, after, box)
    assert scroll is not None
    assert scroll.src_y - scroll.dest.y == 57
    dest = scroll.dest
    copied = before[scroll.src_y : scroll.src_y + dest.height, dest.x : dest.x + dest.width]
    assert np.array_equal(dest.slice(after), copied)
    assert dest.height >= 300
    # Once the viewer's copy is applied, only the uncovered rows remain to be sent, and
    # the cheap border-only update of the grid agrees with a full comparison.
    model = before.copy()
    model[dest.y : dest.y + dest.height, dest.x : dest.x + dest.width] = copied
    damage.after_copy(grid, model, after, dest)
    assert np.array_equal(grid, damage.dirty_tiles(model, after))
    assert grid.sum() < damage.dirty_tiles(before, after).sum() / 3


def test_an_unrelated_change_is_not_taken_for_a_scroll() -> None:
    before = bgrx(photo(400, 400, seed=4))
    after = bgrx(photo(400, 400, seed=5))
    grid = damage.dirty_tiles(before, after)
    box = damage.bounding_box(grid, 400, 400)
    assert box is not None
    assert damage.find_scroll(before, after, box) is None


@pytest.mark.parametrize(
    ("n", "encoded"),
    [
        (0, b"\x00"),
        (127, b"\x7f"),
        (128, b"\x80\x01"),
        (16383, b"\xff\x7f"),
        (16384, b"\x80\x80\x01"),
        ((1 << 22) - 1, b"\xff\xff\xff"),
    ],
)
def test_tight_compact_length(n: int, encoded: bytes) -> None:
    assert compact_length(n) == encoded


def test_zrle_packs_palette_indices_most_significant_first_with_padded_rows() -> None:
    index = np.array([[1, 0, 1], [0, 1, 1]], np.uint8)
    assert pack_indices(index, 1) == bytes([0b10100000, 0b01100000])
    index = np.array([[3, 2, 1, 0, 3]], np.uint8)
    assert pack_indices(index, 2) == bytes([0b11100100, 0b11000000])
    index = np.array([[15, 1, 7]], np.uint8)
    assert pack_indices(index, 4) == bytes([0xF1, 0x70])


def test_tight_chooses_fill_palette_and_jpeg_by_content() -> None:
    frame = np.zeros((128, 192, 4), np.uint8)
    frame[:, :64] = (40, 30, 20, 0)  # solid
    frame[:, 64:128] = (255, 255, 255, 0)  # two colours: text
    frame[10:20, 70:120] = (0, 0, 0, 0)
    frame[:, 128:] = bgrx(photo(64, 128))
    encoder = TightEncoder()
    rects = encoder.encode(frame, Rect(0, 0, 192, 128), Settings(NOVNC, quality=6))
    kinds = {}
    for r in rects:
        control = r.payload[0]
        kinds[r.rect.x] = (
            "fill" if control == 0x80 else "jpeg" if control == 0x90 else "basic",
            r.rect,
        )
    assert kinds[0] == ("fill", Rect(0, 0, 64, 128))  # two tile rows joined
    assert kinds[128][0] == "jpeg" and kinds[128][1] == Rect(128, 0, 64, 128)
    (text,) = [r for r in rects if r.rect.x == 64 and r.rect.y == 0]
    assert text.payload[0] & 0x40 and text.payload[1] == 1  # the palette filter
    assert text.payload[2] == 1  # two colours: one bit per pixel
    (blank,) = [r for r in rects if r.rect.x == 64 and r.rect.y == 64]
    assert blank.payload == b"\x80\xff\xff\xff"  # a white fill
    jpeg = next(r for r in rects if r.payload[0] == 0x90)
    length, at = read_compact(jpeg.payload, 1)
    assert len(jpeg.payload) == at + length
    decoded = simplejpeg.decode_jpeg(jpeg.payload[at:], colorspace="BGRX")
    assert decoded.shape[:2] == (128, 64)


def test_tight_without_a_quality_level_stays_lossless() -> None:
    frame = bgrx(photo(64, 64))
    encoder = TightEncoder()
    (rect,) = encoder.encode(frame, Rect(0, 0, 64, 64), Settings(NOVNC, quality=None))
    control = rect.payload[0]
    assert control & 0xF0 == 0x00  # basic compression, copy filter, stream 0
    assert control & 0x01  # a new zlib stream: reset
    length, at = read_compact(rect.payload, 1)
    assert len(rect.payload) == at + length
    data = zlib.decompressobj().decompress(rect.payload[at:])
    assert data == NOVNC.pack_tight(frame).tobytes()
