"""``fjernhjelp agent desktop-serve``: a loopback VNC port for any viewer; never public."""

from __future__ import annotations

import subprocess
import sys

import pytest
from typer.testing import CliRunner

from fjernhjelp.cli import app
from tests.asyncrun import run_async
from tests.desktop.xvfb import Xvfb
from tests.e2e.conftest import free_port
from tests.streams.desktop.rfbclient import RfbClient

pytestmark = pytest.mark.desktop


@pytest.mark.parametrize("listen", ["0.0.0.0:5901", "192.0.2.10:5901", "example.org:5901"])
def test_desktop_serve_refuses_non_loopback_addresses(listen: str) -> None:
    result = CliRunner().invoke(app, ["agent", "desktop-serve", "--listen", listen])
    assert result.exit_code == 2
    assert "loopback" in result.output


def test_desktop_serve_serves_the_display(xserver: Xvfb) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "fjernhjelp",
            "agent",
            "desktop-serve",
            "--listen",
            f"127.0.0.1:{port}",
            "--display",
            xserver.display,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        assert proc.stdout is not None
        assert b"Serving X display" in proc.stdout.readline()

        async def run() -> tuple[int, int]:
            client = await RfbClient.connect(port)
            await client.handshake()
            await client.close()
            return client.width, client.height

        assert run_async(run()) == (xserver.width, xserver.height)
    finally:
        proc.terminate()
        proc.wait(10)
