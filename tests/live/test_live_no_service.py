"""An agent set up without systemd (`agent install --no-service`) enrols and comes online."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from fjernhjelp.agent.config import load_config
from fjernhjelp.agent.identity import load_identity
from fjernhjelp.control.package import read_package
from fjernhjelp.machines.models import Machine
from tests.live.live import AgentProcess, LiveSite

pytestmark = pytest.mark.slow


def test_install_without_a_service_then_run_enrols(site: LiveSite, tmp_path: Path) -> None:
    world = site.world
    package = site.package()
    package_file = tmp_path / "agent-package.json"
    package_file.write_bytes(package)
    target = tmp_path / "agent"
    installed = site.cli(
        "agent",
        "install",
        "--no-service",
        "--config-dir",
        str(target),
        str(package_file),
        "--expect-fingerprint",
        read_package(package).fingerprint,
        home=tmp_path / "cli",
    )
    assert installed.returncode == 0, installed.stderr + installed.stdout
    config_file = target / "agent.toml"
    assert (config_file.stat().st_mode & 0o777, target.stat().st_mode & 0o777) == (0o600, 0o700)
    assert (target / "identity.key").stat().st_mode & 0o777 == 0o600
    # Nothing runs yet: the server has no machine.
    assert site.events("machine.enrolled") == []

    agent = AgentProcess("pc-uten-systemd", config_file, tmp_path / "agent.log")
    site.agents.append(agent)
    agent.start()
    site.login(world.tech)
    machines = site.wait_online(site.api_token(world.tech), {"pc-uten-systemd"})
    assert len(machines) == 1
    enrolled = site.wait_event("machine.enrolled")
    # The agent proved the key the install wrote, and kept the machine id, not the token.
    key = load_identity(target / "identity.key")
    world.db.rollback()
    machine = world.db.execute(select(Machine)).scalar_one()
    assert machine.identity_public_key == key.public_bytes
    assert str(machine.id) == str(enrolled.machine_id) == machines[0]["id"]
    after = load_config(config_file)
    assert after.machine_id == str(machine.id) and after.enrolment_token is None
    assert config_file.stat().st_mode & 0o777 == 0o600
