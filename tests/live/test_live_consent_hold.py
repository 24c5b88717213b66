"""A technician in control of the screen cannot answer another session's consent dialog.

Session A is allowed and has the desktop with control (through `connect --vnc` and a
plain RFB client); session B asks for consent. A clicks where the dialog's Allow button
is and presses Tab, space and Return; while the dialog is up every remote input is
dropped, so B stays unapproved until the person at the screen (xdotool, here) denies it.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from Xlib import XK

from fjernhjelp.agent.display import DisplayTarget
from fjernhjelp.portal.models import Permission
from tests.asyncrun import run_async
from tests.live.live import AgentProcess, LiveSite
from tests.portal.world import build_world
from tests.streams.desktop.rfbclient import RfbClient
from tests.x11 import click, screenshot

pytestmark = [pytest.mark.slow, pytest.mark.desktop]

CONTROL = frozenset({Permission.VIEW, Permission.CONTROL, Permission.FILES})


@pytest.fixture
def attended(db, state, database_url: str, tmp_path: Path) -> Iterator[LiveSite]:
    world = build_world(db, state, grant=False)
    world.grant = world.make_grant(permissions=CONTROL, consent_required=True)
    live = LiveSite(world, tmp_path, database_url)
    live.start_server()
    yield live
    live.stop()


def _dialogs(agent: AgentProcess) -> list[dict]:
    found = re.findall(r"consent dialog shown: (\{.*\})", agent.log.read_text())
    return [json.loads(f) for f in found]


def _nth_dialog(agent: AgentProcess, n: int, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        shown = _dialogs(agent)
        if len(shown) >= n:
            return shown[n - 1]
        time.sleep(0.2)
    raise TimeoutError(f"consent dialog {n} never shown:\n{agent.log.read_text()[-3000:]}")


def _cli(site: LiveSite, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "FJERNHJELP_CLI_HOME": str(site.cli_home)}
    return subprocess.Popen(
        [sys.executable, "-m", "fjernhjelp", "connect", "pc-1", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def _vnc_port(proc: subprocess.Popen[str]) -> int:
    assert proc.stderr is not None
    seen = ""
    while True:
        line = proc.stderr.readline()
        seen += line
        match = re.search(r"connect to 127\.0\.0\.1:(\d+)", line)
        if match:
            return int(match.group(1))
        if not line and proc.poll() is not None:
            raise AssertionError(f"no VNC port: {seen}")


def _pointer_at(display: DisplayTarget) -> tuple[int, int]:
    out = subprocess.run(
        ["xdotool", "getmouselocation", "--shell"],
        env={**os.environ, "DISPLAY": display.display},
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    values = dict(line.split("=", 1) for line in out.split())
    return int(values["X"]), int(values["Y"])


async def _barrier(client: RfbClient) -> None:
    """Every message sent before this has been handled by the agent: it reads a viewer's
    messages in order, and answers a full update request only after the ones before."""
    client.request(False)
    await client.writer.drain()
    await asyncio.wait_for(client.read_update(), 60)


def test_a_controlling_session_cannot_allow_another_sessions_consent(
    attended: LiveSite, xvfb: DisplayTarget, tmp_path: Path
) -> None:
    share = tmp_path / "share"
    share.mkdir()
    (share / "note.txt").write_text("hei\n")
    agent = attended.agent("pc-1", display=xvfb.display, file_roots=[share])
    agent.start()
    attended.login(attended.world.tech)
    attended.wait_online(attended.api_token(attended.world.tech), {"pc-1"})

    # Session A: the person allows it; the technician then has the screen with control.
    a = _cli(attended, "--vnc", "127.0.0.1:0")
    click(xvfb, *_nth_dialog(agent, 1)["buttons"]["allow"])
    port = _vnc_port(a)
    b: subprocess.Popen[str] | None = None

    async def scenario() -> None:
        nonlocal b
        client = await RfbClient.connect(port)
        await client.handshake()
        client.set_encodings([0])
        # A's input works before any dialog: the pointer goes where A sends it.
        client.pointer(0, 101, 102)
        await _barrier(client)
        assert _pointer_at(xvfb) == (101, 102)

        # Session B asks; its dialog comes up.
        b = _cli(attended, "--get", "note.txt", str(tmp_path / "note.txt"))
        dialog = await asyncio.to_thread(_nth_dialog, agent, 2)
        allow_x, allow_y = dialog["buttons"]["allow"]

        # The attack: A clicks Allow, and tries the keyboard (Tab to a button, space,
        # Return), all through its own session.
        client.pointer(0, allow_x, allow_y)
        client.pointer(1, allow_x, allow_y)
        client.pointer(0, allow_x, allow_y)
        for name in ("Tab", "space", "Tab", "space", "Return"):
            keysym = XK.string_to_keysym(name)
            client.key(True, keysym)
            client.key(False, keysym)
        await _barrier(client)
        screenshot(xvfb, tmp_path / "held.png")

        # Nothing of it reached the screen, and B is still waiting for the person.
        assert _pointer_at(xvfb) != (allow_x, allow_y)
        assert b.poll() is None
        assert len(attended.events("consent.given")) == 1  # A's, given by the person

        # The person denies B; only then does A's input work again.
        click(xvfb, *dialog["buttons"]["deny"])
        _, stderr = await asyncio.to_thread(b.communicate, timeout=60)
        assert b.returncode == 1 and "denied" in stderr
        held = await asyncio.to_thread(attended.wait_event, "input.held_back")
        counts = json.loads(held.details)
        assert held.outcome == "denied" and held.reason == "consent_pending"
        assert counts["pointer_events"] == 3 and counts["key_events"] == 10
        client.pointer(0, 201, 202)
        await _barrier(client)
        assert _pointer_at(xvfb) == (201, 202)
        await client.close()

    try:
        run_async(scenario())
    finally:
        for proc in (a, b):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                proc.wait(20)
    assert not (tmp_path / "note.txt").exists()
    assert len(attended.events("consent.given")) == 1
    attended.wait_event("consent.denied")
