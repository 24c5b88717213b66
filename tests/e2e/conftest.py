"""Real headless Chromium (Debian's), driven by Playwright, against a real server process."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

CHROMIUM = os.environ.get("FJERNHJELP_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


@pytest.fixture
def screen() -> Iterator[object]:
    """A 1280×800 X server for a live agent's desktop (imported here, not at start-up)."""
    from tests.desktop.xvfb import xvfb

    with xvfb(1280, 800) as server:
        yield server


@pytest.fixture
def site(db, state, database_url: str, tmp_path: Path) -> Iterator[object]:  # type: ignore[no-untyped-def]
    """A running server whose grant needs the end user's consent (console_live.py); a
    module that needs another kind of site defines its own ``site``."""
    from tests.e2e.console_live import consent_site

    with consent_site(db, state, database_url, tmp_path) as live:
        yield live


@pytest.fixture
def page(browser) -> Iterator[object]:  # type: ignore[no-untyped-def]
    context = browser.new_context(locale="nb-NO")
    pg = context.new_page()
    yield pg
    context.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    def __init__(self, args: list[str], env: dict[str, str], url: str, log: Path) -> None:
        self.url = url
        self.log = log
        self._fh = log.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "fjernhjelp", *args],
            env=env,
            stdout=self._fh,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited:\n{self.log.read_text()}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"server not ready:\n{self.log.read_text()}")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self._fh.close()


def start_server(
    command: str,
    data_dir: Path,
    database_url: str,
    extra_env: dict[str, str] | None = None,
    port: int | None = None,
) -> ServerProcess:
    # A port free_port chose may be taken before the server binds it (another process's
    # outgoing connection gets it from the same ephemeral range): then another one. A
    # port the caller gave (a restart on the same port) is not changed.
    for attempt in range(3):
        chosen = port or free_port()
        env = {
            **os.environ,
            "FJERNHJELP_DATA_DIR": str(data_dir),
            "FJERNHJELP_DATABASE_URL": database_url,
            "FJERNHJELP_BIND": f"127.0.0.1:{chosen}",
            **(extra_env or {}),
        }
        server = ServerProcess(
            [command], env, f"http://127.0.0.1:{chosen}", data_dir.parent / "server.log"
        )
        try:
            server.wait_ready()
        except RuntimeError:
            server.stop()
            if port is not None or attempt == 2 or "address already in use" not in (
                server.log.read_text()
            ):
                raise
            continue
        return server
    raise AssertionError("unreachable")
