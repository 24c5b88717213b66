"""Attended access: the end user allows, denies or ignores the request on a real X
screen (Xvfb, clicked with xdotool), and can end a running session."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pexpect
import pytest

from fjernhjelp.agent.display import DisplayTarget
from fjernhjelp.portal.models import Permission
from tests.live.live import AgentProcess, LiveSite
from tests.portal.world import build_world
from tests.x11 import click, screenshot

pytestmark = [pytest.mark.slow, pytest.mark.desktop]

# TERMINAL_ADMIN: the agents here run as root, and a shell as root needs it.
ATTENDED = frozenset(
    {Permission.VIEW, Permission.TERMINAL, Permission.TERMINAL_ADMIN, Permission.FILES}
)


@pytest.fixture
def attended(db, state, database_url: str, tmp_path: Path) -> Iterator[LiveSite]:
    world = build_world(db, state, grant=False)
    world.grant = world.make_grant(permissions=ATTENDED, consent_required=True)
    live = LiveSite(world, tmp_path, database_url)
    live.start_server()
    yield live
    live.stop()


def _shown(agent: AgentProcess, what: str, timeout: float = 30) -> dict:
    """The window and button positions the agent logs when it shows a dialog."""
    pattern = re.compile(re.escape(what) + r" shown: (\{.*\})")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        matches = pattern.findall(agent.log.read_text())
        if matches:
            return json.loads(matches[-1])
        time.sleep(0.2)
    raise TimeoutError(f"{what} never shown:\n{agent.log.read_text()[-3000:]}")


def _get_in_background(site: LiveSite, tmp_path: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "FJERNHJELP_CLI_HOME": str(site.cli_home)}
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "fjernhjelp",
            "connect",
            "pc-1",
            "--get",
            "note.txt",
            str(tmp_path / "note.txt"),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _start(site: LiveSite, xvfb: DisplayTarget, tmp_path: Path, **config: object) -> AgentProcess:
    share = tmp_path / "share"
    share.mkdir(exist_ok=True)
    (share / "note.txt").write_text("hei fra legekontoret\n")
    agent = site.agent("pc-1", display=xvfb.display, file_roots=[share], **config)
    agent.start()
    site.login(site.world.tech)
    site.wait_online(site.api_token(site.world.tech), {"pc-1"})
    return agent


def test_end_user_allows(attended: LiveSite, xvfb: DisplayTarget, tmp_path: Path) -> None:
    agent = _start(attended, xvfb, tmp_path)
    cli = _get_in_background(attended, tmp_path)
    dialog = _shown(agent, "consent dialog")
    screenshot(xvfb, tmp_path / "consent.png")
    click(xvfb, *dialog["buttons"]["allow"])
    _, stderr = cli.communicate(timeout=60)
    assert cli.returncode == 0, stderr
    assert "waiting for the end user" in stderr and "allowed" in stderr
    assert (tmp_path / "note.txt").read_text() == "hei fra legekontoret\n"
    for action in ("consent.asked", "consent.given", "file.moved"):
        attended.wait_event(action)


def test_end_user_denies(attended: LiveSite, xvfb: DisplayTarget, tmp_path: Path) -> None:
    agent = _start(attended, xvfb, tmp_path)
    cli = _get_in_background(attended, tmp_path)
    click(xvfb, *_shown(agent, "consent dialog")["buttons"]["deny"])
    _, stderr = cli.communicate(timeout=60)
    assert cli.returncode == 1 and "denied" in stderr
    assert not (tmp_path / "note.txt").exists()
    denied = attended.wait_event("consent.denied")
    assert denied.outcome == "denied" and denied.actor_name == "agent@pc-1"
    assert attended.events("file.moved") == []


def test_no_answer_is_a_denial(attended: LiveSite, xvfb: DisplayTarget, tmp_path: Path) -> None:
    agent = _start(attended, xvfb, tmp_path, consent_timeout=5.0)
    cli = _get_in_background(attended, tmp_path)
    _shown(agent, "consent dialog")
    _, stderr = cli.communicate(timeout=60)
    assert cli.returncode == 1 and "did not answer" in stderr
    attended.wait_event("consent.timed_out")


def test_end_user_ends_a_running_session(
    attended: LiveSite, xvfb: DisplayTarget, tmp_path: Path
) -> None:
    agent = _start(attended, xvfb, tmp_path)
    env = {**os.environ, "FJERNHJELP_CLI_HOME": str(attended.cli_home)}
    shell = pexpect.spawn(
        sys.executable,
        ["-m", "fjernhjelp", "connect", "pc-1", "--shell", "--as", "service"],
        env=env,
        encoding="utf-8",
        timeout=60,
    )
    click(xvfb, *_shown(agent, "consent dialog")["buttons"]["allow"])
    shell.sendline("echo i-gang-$((6*7))")
    shell.expect("i-gang-42")  # the shell's answer, not the local echo
    indicator = _shown(agent, "session indicator")
    screenshot(xvfb, tmp_path / "indicator.png")
    click(xvfb, *indicator["buttons"]["end_session"])
    shell.expect(pexpect.EOF, timeout=30)
    reported = attended.wait_event("session.ended_at_agent")
    assert reported.reason.startswith("ended_by_user")
    attended.wait_event("session.ended", contains="bytes_from_technician")


def test_nobody_at_the_screen_refuses_attended_sessions(attended: LiveSite, tmp_path: Path) -> None:
    share = tmp_path / "share"
    share.mkdir()
    attended.agent("pc-1", display="none", file_roots=[share]).start()
    attended.login(attended.world.tech)
    attended.wait_online(attended.api_token(attended.world.tech), {"pc-1"})
    result = attended.cli("connect", "pc-1", "--get", "x", str(tmp_path / "x"))
    assert result.returncode == 1 and "policy" in result.stderr
    attended.wait_event("consent.no_display")
    refused = attended.wait_event("session.refused")
    assert refused.reason == "policy"
