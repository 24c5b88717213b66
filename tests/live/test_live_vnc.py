"""`fjernhjelp connect MACHINE --vnc`: an independent VNC client (vncdotool's `vncdo`)
types into a real application through the local port, the relay and the tunnel."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.desktop.xvfb import EntryApp, Xvfb, xvfb
from tests.live.live import LiveSite

pytestmark = [pytest.mark.slow, pytest.mark.desktop]

TEXT = "Blåbærsyltetøy"
VNCDO = Path(sys.executable).with_name("vncdo")


@pytest.fixture
def screen() -> Iterator[Xvfb]:
    with xvfb(1024, 768) as server:
        yield server


def _listening(proc: subprocess.Popen[str], timeout: float = 60) -> int:
    assert proc.stderr is not None
    deadline = time.monotonic() + timeout
    seen = ""
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        seen += line
        match = re.search(r"connect to 127\.0\.0\.1:(\d+)", line)
        if match:
            return int(match.group(1))
        if not line and proc.poll() is not None:
            break
    raise TimeoutError(f"no VNC port: {seen}")


def test_a_vnc_viewer_types_through_the_tunnel(
    site: LiveSite, screen: Xvfb, tmp_path: Path
) -> None:
    app = EntryApp(screen, tmp_path)
    site.agent("pc-1", display=screen.display).start()
    site.login(site.world.tech)
    site.wait_online(site.api_token(site.world.tech), {"pc-1"})
    env = {**os.environ, "FJERNHJELP_CLI_HOME": str(site.cli_home)}
    cli = subprocess.Popen(
        [sys.executable, "-m", "fjernhjelp", "connect", "pc-1", "--vnc", "127.0.0.1:0"],
        env=env,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    try:
        port = _listening(cli)
        subprocess.run(
            [
                str(VNCDO),
                "-s",
                f"127.0.0.1::{port}",
                "move",
                *map(str, EntryApp.ENTRY),
                "click",
                "1",
                "type",
                TEXT,
                "move",
                *map(str, EntryApp.BUTTON),
                "click",
                "1",
            ],
            check=True,
            timeout=120,
        )
        assert app.wait_result() == TEXT
        site.wait_event("stream.opened", contains='"service":"desktop"')
    finally:
        cli.terminate()
        cli.wait(20)
        app.stop()


def test_the_local_port_refuses_other_addresses(site: LiveSite) -> None:
    site.login(site.world.tech)
    result = site.cli("connect", "pc-1", "--vnc", "0.0.0.0:5901")
    assert result.returncode == 2 and "loopback" in result.stderr
