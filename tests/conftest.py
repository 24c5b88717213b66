"""Fixtures: a clean database on each backend, the app, a test client, a controllable clock.

FJERNHJELP_TEST_BACKENDS (comma-separated: sqlite, postgresql) decides which backends
the database tests run on; scripts/test.sh sets it, .ci/run always asks for both.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import shutil
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from fjernhjelp.audit.chain import GENESIS
from fjernhjelp.config import Settings
from fjernhjelp.db import migrate
from fjernhjelp.db.base import utcnow
from fjernhjelp.db.engine import make_engine
from fjernhjelp.db.models import Base
from fjernhjelp.server.app import create_app
from fjernhjelp.server.state import AppState, build_state
from tests.applied import TEST_SESSION, AppliedRevocations
from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS
from tests.x11 import xvfb  # noqa: F401  (the real X server fixture, for every folder)

BACKENDS = [b for b in os.environ.get("FJERNHJELP_TEST_BACKENDS", "sqlite").split(",") if b]
PG_ADMIN_URL = os.environ.get(
    "FJERNHJELP_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


@dataclass
class Backend:
    name: str
    template: str  # a migrated database: a file path (SQLite) or a URL (PostgreSQL)

    def fresh_url(self, tmp_path: Path) -> str:
        if self.name == "sqlite":
            target = tmp_path / "fjernhjelp.db"
            shutil.copyfile(self.template, target)
            return f"sqlite:///{target}"
        _truncate_postgres(self.template)
        return self.template


def _truncate_postgres(url: str) -> None:
    engine = make_engine(url, poolclass=NullPool)
    tables = ", ".join(t.name for t in Base.metadata.sorted_tables)
    with engine.begin() as conn:
        # TRUNCATE does not fire the row triggers that keep audit_events append-only.
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
        conn.execute(text("ALTER TABLE audit_events ENABLE TRIGGER ALL"))
        conn.execute(
            text("INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, :h)"), {"h": GENESIS}
        )
    engine.dispose()


def only_on_one_backend(backend: Backend, which: int = -1) -> None:
    """Skip unless ``backend`` is the run's ``which``-th (wrapping). For slow browser and
    live stories whose subject is not the database: the services under them run on
    every backend in their own tests, and the story runs once per run, not once per
    database (the suite's 20-minute bar)."""
    chosen = BACKENDS[which % len(BACKENDS)]
    if backend.name != chosen:
        pytest.skip(f"runs on one backend per run ({chosen}); its services run on each")


# Tests that take seconds to a minute each: real servers, agents, X servers, browsers, chroots.
_LONG_MARKS = ("slow", "browser", "desktop", "packaging", "support_build")
_LONG_FOLDERS = ("e2e", "live", "packaging", "support_client")


def _long(item: pytest.Item) -> bool:
    here = Path(__file__).parent
    folder = item.path.relative_to(here).parts[0] if item.path.is_relative_to(here) else ""
    return folder in _LONG_FOLDERS or any(item.get_closest_marker(m) for m in _LONG_MARKS)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The long tests first: xdist hands each worker the next test in this order as it
    finishes one, so with the short ones last both workers finish within seconds of each
    other (a story last in the order kept one worker busy for minutes, the other idle).

    ``@pytest.mark.one_backend(which)``: only_on_one_backend's choice made at collection,
    so the other backend's run is skipped before its fixtures (server, agent, Xvfb) start.
    Browser stories alternate ``which``, so each backend still serves some of them."""
    items.sort(key=lambda item: not _long(item))  # stable: the order within each stays
    for item in items:
        marker = item.get_closest_marker("one_backend")
        callspec = getattr(item, "callspec", None)
        if marker is None or callspec is None or "backend" not in callspec.params:
            continue
        chosen = BACKENDS[(marker.args[0] if marker.args else -1) % len(BACKENDS)]
        if callspec.params["backend"] != chosen:
            reason = f"runs on one backend per run ({chosen}); its services run on each"
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session", params=BACKENDS)
def backend(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Backend]:
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("template") / "template.db"
        engine = make_engine(f"sqlite:///{path}")
        migrate.upgrade(engine)
        engine.dispose()  # the last connection to close checkpoints and removes the WAL
        yield Backend("sqlite", str(path))
        return
    if request.param != "postgresql":
        raise pytest.UsageError(f"unknown backend {request.param}")
    name = f"fjh_test_{uuid.uuid4().hex[:12]}"
    admin = make_engine(PG_ADMIN_URL, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    engine = make_engine(url, poolclass=NullPool)
    migrate.upgrade(engine)
    engine.dispose()
    yield Backend("postgresql", url)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def database_url(backend: Backend, tmp_path: Path) -> str:
    return backend.fresh_url(tmp_path)


class Clock:
    """Real time plus an offset tests can move forward (lockouts, expiry)."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return utcnow() + self.offset

    def advance(self, **kwargs: float) -> None:
        self.offset += timedelta(**kwargs)


@pytest.fixture
def clock() -> Clock:
    return Clock()


def test_settings(tmp_path: Path, database_url: str, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "data_dir": tmp_path / "data",
        "database_url": database_url,
        # Cheaper argon2id for speed; the algorithm and the code path are the same.
        "argon2_time_cost": 1,
        "argon2_memory_kib": 1024,
        "argon2_parallelism": 1,
        # Tests hold sockets open without a word to fill caps and admission; on a busy
        # machine they would pass ws_silent_seconds and stop counting. Silence has its
        # own tests, which set it (tests/server/test_agent_listener.py and others).
        "ws_silent_seconds": 600.0,
        # The Support sweep's timer writes every 30 s: in a test that runs that long (a
        # loaded machine) its write could fall between a read and a write of the test's
        # DEFERRED session, which then fails at once (tests/applied.py says why). Tests
        # run the sweep themselves (housekeeping.support_expiry_job).
        "support_sweep_seconds": 24 * 3600.0,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return test_settings(tmp_path, database_url)


@pytest.fixture
def state(settings: Settings, clock: Clock) -> Iterator[AppState]:
    st = build_state(settings)
    st.clock = clock
    yield st
    st.engine.dispose()


@pytest.fixture
def engine(state: AppState) -> Engine:
    return state.engine


@pytest.fixture
def db(state: AppState) -> Iterator[Session]:
    """The test's own session. Deferred, so a test that has read something does not hold
    SQLite's write lock while the app under test serves a request; call db.rollback()
    (or commit) before reading what the app wrote, to see a fresh snapshot."""
    with state.readers() as session:
        # Its transactions begin once the app has applied the revocations published so
        # far (tests/applied.py): a DEFERRED transaction cannot wait for the write lock.
        session.info[TEST_SESSION] = True
        yield session


@pytest.fixture
def app(state: AppState):  # type: ignore[no-untyped-def]
    app = create_app(state=state)
    applied = AppliedRevocations(state, app.state.access)
    app.state.applied_revocations = applied
    yield app
    applied.close()


@pytest.fixture
def client(app) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    with TestClient(app, base_url="http://testserver", follow_redirects=False) as c:
        yield c


# Async tests run each in a fresh event loop on a thread of their own, not through
# pytest-asyncio: the browser tests keep a Playwright (sync API) session open, which
# marks the main thread's loop as running, and every asyncio.Runner on that thread would
# then refuse to start. A thread has no running loop.
@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    if not inspect.iscoroutinefunction(pyfuncitem.obj):
        return None
    names = pyfuncitem._fixtureinfo.argnames
    kwargs = {name: pyfuncitem.funcargs[name] for name in names}
    outcome: dict[str, BaseException] = {}

    def run() -> None:
        try:
            asyncio.run(pyfuncitem.obj(**kwargs))
        except BaseException as exc:  # handed to the main thread, which raises it
            outcome["error"] = exc

    # Daemon: if pytest-timeout fires in the main thread, a hung test cannot keep the
    # process alive.
    thread = threading.Thread(target=run, name=pyfuncitem.name, daemon=True)
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return True


# One Playwright (sync API) per test process: a second one in the same worker fails
# ("Sync API inside the asyncio loop"), so every browser test shares this one.
@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()
