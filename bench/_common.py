"""Shared helpers for benchmarks: timing, medians, and a throwaway database."""

from __future__ import annotations

import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from fjernhjelp.db.engine import make_engine

PG_ADMIN_URL = os.environ.get(
    "FJERNHJELP_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


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


@contextmanager
def throwaway_postgres(prefix: str) -> Iterator[str]:
    """The URL of a PostgreSQL database made for the run and dropped after it."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = make_engine(PG_ADMIN_URL, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
