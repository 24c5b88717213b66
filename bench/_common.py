"""Shared helpers for benchmarks: timing, medians, and a throwaway database."""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path


def rate(fn: Callable[[], object], n: int) -> float:
    """Calls per second of ``fn`` over ``n`` calls."""
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return n / (time.perf_counter() - start)


def median_rate(fn: Callable[[], object], n: int, rounds: int) -> float:
    return statistics.median(rate(fn, n) for _ in range(rounds))


def temp_sqlite_url() -> str:
    directory = Path(tempfile.mkdtemp(prefix="fjh-bench-"))
    return f"sqlite:///{directory / 'bench.db'}"
