"""What changed since the viewer's last picture: dirty tiles, rectangles, and scrolling.

The session keeps a copy of what the viewer has (its "model"). A frame is compared with
it in 64x64 tiles, so a still screen yields nothing to send. A vertical scroll is found
by matching row hashes between the model and the frame and becomes one CopyRect; the
rows the scroll uncovered are then the only ones left to encode.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from fjernhjelp.streams.desktop.encoders.base import Rect

TILE = 64
MAX_RUN_TILES = 32  # 2048 pixels: Tight's widest rectangle
MIN_SCROLL_ROWS = 48  # shorter matches are not worth a CopyRect


def dirty_tiles(model: np.ndarray, frame: np.ndarray, within: Rect | None = None) -> np.ndarray:
    """A ``(tile rows, tile columns)`` grid, True where any pixel differs.

    ``within`` limits the comparison to the tiles that rectangle touches (the area the
    X server reported as damaged); tiles outside it are reported clean.
    """
    height, width = frame.shape[:2]
    grid = np.zeros((-(-height // TILE), -(-width // TILE)), bool)
    if within is None:
        within = Rect(0, 0, width, height)
    tx0, ty0 = within.x // TILE, within.y // TILE
    tx1 = -(-min(within.x + within.width, width) // TILE)
    ty1 = -(-min(within.y + within.height, height) // TILE)
    if tx1 <= tx0 or ty1 <= ty0:
        return grid
    ys, xs = slice(ty0 * TILE, ty1 * TILE), slice(tx0 * TILE, tx1 * TILE)
    changed = model[ys, xs].view(np.uint32)[..., 0] != frame[ys, xs].view(np.uint32)[..., 0]
    h, w = changed.shape
    if h % TILE or w % TILE:  # the screen's last tile row or column is narrower
        padded = np.zeros(((ty1 - ty0) * TILE, (tx1 - tx0) * TILE), bool)
        padded[:h, :w] = changed
        changed = padded
    grid[ty0:ty1, tx0:tx1] = changed.reshape(ty1 - ty0, TILE, tx1 - tx0, TILE).any(axis=(1, 3))
    return grid


def after_copy(grid: np.ndarray, model: np.ndarray, frame: np.ndarray, dest: Rect) -> None:
    """Update ``grid`` once a verified copy made ``model`` equal ``frame`` inside ``dest``.

    Tiles wholly inside ``dest`` are now clean; only tiles on its border are compared
    again, which is far cheaper than a second full comparison.
    """
    tx0, ty0 = -(-dest.x // TILE), -(-dest.y // TILE)
    tx1, ty1 = (dest.x + dest.width) // TILE, (dest.y + dest.height) // TILE
    height, width = frame.shape[:2]
    if (dest.x + dest.width) == width:
        tx1 = grid.shape[1]
    if (dest.y + dest.height) == height:
        ty1 = grid.shape[0]
    grid[ty0:ty1, tx0:tx1] = False
    bx0, by0 = dest.x // TILE, dest.y // TILE
    bx1, by1 = -(-(dest.x + dest.width) // TILE), -(-(dest.y + dest.height) // TILE)
    for ty in range(by0, by1):
        for tx in range(bx0, bx1):
            if (ty0 <= ty < ty1 and tx0 <= tx < tx1) or not grid[ty, tx]:
                continue
            tile = (slice(ty * TILE, (ty + 1) * TILE), slice(tx * TILE, (tx + 1) * TILE))
            grid[ty, tx] = not np.array_equal(model[tile], frame[tile])


def union(a: Rect | None, b: Rect | None) -> Rect | None:
    if a is None or b is None:
        return a or b
    x0, y0 = min(a.x, b.x), min(a.y, b.y)
    x1, y1 = max(a.x + a.width, b.x + b.width), max(a.y + a.height, b.y + b.height)
    return Rect(x0, y0, x1 - x0, y1 - y0)


def covers(outer: Rect, inner: Rect) -> bool:
    return (
        outer.x <= inner.x
        and outer.y <= inner.y
        and outer.x + outer.width >= inner.x + inner.width
        and outer.y + outer.height >= inner.y + inner.height
    )


def tiles_to_rects(grid: np.ndarray, width: int, height: int) -> list[Rect]:
    """Dirty tiles as few rectangles: runs along each tile row, joined downwards."""
    done: list[Rect] = []
    open_: dict[tuple[int, int], Rect] = {}
    for ty in range(grid.shape[0]):
        y = ty * TILE
        h = min(TILE, height - y)
        next_open: dict[tuple[int, int], Rect] = {}
        for start, stop in _runs(grid[ty]):
            key = (start, stop)
            x = start * TILE
            w = min(stop * TILE, width) - x
            above = open_.pop(key, None)
            if above is not None:
                next_open[key] = Rect(above.x, above.y, above.width, above.height + h)
            else:
                next_open[key] = Rect(x, y, w, h)
        done.extend(open_.values())
        open_ = next_open
    done.extend(open_.values())
    return done


def _runs(row: np.ndarray) -> list[tuple[int, int]]:
    runs = []
    padded = np.concatenate(([False], row, [False]))
    edges = np.flatnonzero(padded[1:] != padded[:-1])
    for start, stop in zip(edges[::2], edges[1::2], strict=True):
        for s in range(int(start), int(stop), MAX_RUN_TILES):
            runs.append((s, min(int(stop), s + MAX_RUN_TILES)))
    return runs


def bounding_box(grid: np.ndarray, width: int, height: int) -> Rect | None:
    rows = np.flatnonzero(grid.any(axis=1))
    cols = np.flatnonzero(grid.any(axis=0))
    if len(rows) == 0:
        return None
    x, y = int(cols[0]) * TILE, int(rows[0]) * TILE
    return Rect(
        x,
        y,
        min((int(cols[-1]) + 1) * TILE, width) - x,
        min((int(rows[-1]) + 1) * TILE, height) - y,
    )


def clip(rect: Rect, area: Rect) -> Rect | None:
    x0, y0 = max(rect.x, area.x), max(rect.y, area.y)
    x1 = min(rect.x + rect.width, area.x + area.width)
    y1 = min(rect.y + rect.height, area.y + area.height)
    if x1 <= x0 or y1 <= y0:
        return None
    return Rect(x0, y0, x1 - x0, y1 - y0)


@dataclass(frozen=True, slots=True)
class Scroll:
    """Copy the viewer's pixels at (dest.x, src_y) into ``dest``."""

    dest: Rect
    src_y: int


def find_scroll(model: np.ndarray, frame: np.ndarray, box: Rect) -> Scroll | None:
    """A vertical shift of a band of ``box`` between model and frame, if there is one.

    Tried on the whole box and on the box without its outer tile columns, where a
    scroll bar or a window border usually sits.
    """
    if box.height < 2 * MIN_SCROLL_ROWS:
        return None
    candidates = [box]
    if box.width > 3 * TILE:
        candidates.append(Rect(box.x + TILE, box.y, box.width - 2 * TILE, box.height))
    for area in candidates:
        found = _scroll_in(model, frame, area)
        if found is not None:
            return found
    return None


def _row_hashes(image: np.ndarray, area: Rect) -> np.ndarray:
    rows = area.slice(image).reshape(area.height, area.width * 4)
    if rows.shape[1] % 8:
        rows = rows[:, : rows.shape[1] // 8 * 8]
    # A wrapping sum over every third 8-byte word: cheap, and a candidate shift is
    # verified exactly before it is used.
    words = rows.view(np.uint64)[:, ::3]
    # numpy types ndarray.sum and ufunc.reduce as Any (either may give a scalar); along an
    # axis both give arrays.
    hashes: np.ndarray = words.sum(axis=1, dtype=np.uint64) ^ np.bitwise_xor.reduce(words, axis=1)
    return hashes


def _scroll_in(model: np.ndarray, frame: np.ndarray, area: Rect) -> Scroll | None:
    before = _row_hashes(model, area)
    after = _row_hashes(frame, area)
    counts_before = Counter(before.tolist())
    where_before = {h: i for i, h in enumerate(before.tolist()) if counts_before[h] == 1}
    counts_after = Counter(after.tolist())
    votes: Counter[int] = Counter()
    for i, h in enumerate(after.tolist()):
        j = where_before.get(h)
        if j is not None and counts_after[h] == 1 and j != i:
            votes[j - i] += 1
    if not votes:
        return None
    shift, _ = votes.most_common(1)[0]
    # The longest run of rows i with after[i] == before[i + shift].
    lo, hi = max(0, -shift), min(area.height, area.height - shift)
    same = after[lo:hi] == before[lo + shift : hi + shift]
    best_start, best_len, start = 0, 0, None
    for k, ok in enumerate([*same.tolist(), False]):
        if ok and start is None:
            start = k
        elif not ok and start is not None:
            if k - start > best_len:
                best_start, best_len = start, k - start
            start = None
    if best_len < MIN_SCROLL_ROWS:
        return None
    dest = Rect(area.x, area.y + lo + best_start, area.width, best_len)
    src_y = dest.y + shift
    source = model[src_y : src_y + dest.height, dest.x : dest.x + dest.width]
    if not np.array_equal(dest.slice(frame), source):
        return None
    return Scroll(dest, src_y)
