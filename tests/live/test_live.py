"""Access end to end with real processes: a server, two agents, the technician's CLI."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest

from tests.live.live import LiveSite

pytestmark = pytest.mark.slow


def test_enrol_presence_shell_and_files(site: LiveSite, tmp_path: Path) -> None:
    world = site.world
    package = site.package(max_uses=2)
    share = tmp_path / "share"
    share.mkdir()
    a = site.agent("pc-resepsjon", package, file_roots=[share])
    b = site.agent("pc-lab", package)
    a.start()
    b.start()
    site.login(world.tech)
    token = site.api_token(world.tech)
    machines = site.wait_online(token, {"pc-resepsjon", "pc-lab"})
    assert {m["customer"]["name"] for m in machines} == {"Legekontoret Fjordbyen"}
    assert len(site.events("machine.enrolled")) == 2

    # A 100 MB file there and back, checked by SHA-256 end to end.
    big = tmp_path / "big.bin"
    with big.open("wb") as fh:
        for _ in range(100):
            fh.write(os.urandom(1 << 20))
    digest = hashlib.sha256(big.read_bytes()).hexdigest()
    put = site.cli("connect", "pc-resepsjon", "--put", str(big), "big.bin", timeout=300)
    assert put.returncode == 0, put.stderr
    assert hashlib.sha256((share / "big.bin").read_bytes()).hexdigest() == digest
    back = tmp_path / "back.bin"
    got = site.cli("connect", "pc-resepsjon", "--get", "big.bin", str(back), timeout=300)
    assert got.returncode == 0, got.stderr
    assert hashlib.sha256(back.read_bytes()).hexdigest() == digest
    moved = site.wait_event("file.moved")
    assert moved.details and digest in moved.details
    ended = site.wait_event("session.ended", contains="bytes_from_technician")
    assert ended.reason in ("technician_closed", "agent_closed")
    agent_side = site.wait_event("session.ended_at_agent")
    assert agent_side.actor_name == "agent@pc-resepsjon"

    # Refused outside the agent's file roots, and the refusal is audited.
    outside = site.cli("connect", "pc-resepsjon", "--get", "/etc/passwd", str(tmp_path / "x"))
    assert outside.returncode != 0
    site.wait_event("stream.refused")
    assert not (tmp_path / "x").exists()

    # The agents ran with --verbose, yet no relay token or ticket reached their logs.
    for agent in (a, b):
        log = agent.log.read_text()
        assert "relay_token" not in log


def test_agents_come_back_after_a_server_restart(site: LiveSite) -> None:
    world = site.world
    agent = site.agent("pc-1")
    agent.start()
    site.login(world.tech)
    token = site.api_token(world.tech)
    site.wait_online(token, {"pc-1"})
    site.restart_server()
    machines = site.wait_online(token, {"pc-1"}, timeout=90)
    assert machines[0]["last_seen_at"] is not None
    assert len(site.events("agent.connect")) >= 2
    # The agent restarting keeps its identity: still one machine.
    agent.stop()
    site.wait_online(token, {"pc-1"}, online=False)
    agent.start()
    assert len(site.wait_online(token, {"pc-1"})) == 1
    time.sleep(0.1)
