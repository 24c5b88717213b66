"""The two .deb files of `make deb`, installed, upgraded, removed and purged in a throwaway
Debian (conftest.py) with dpkg, so their maintainer scripts run as on a fresh machine:
Debian's own adduser, no systemd running (the snippets debhelper writes then only record
what to enable), the Debian python3.11 the packages depend on and nothing else.

Two tests on purpose (each package's whole life in one), since each install unpacks
~100 MB and compiles its bytecode.
"""

from __future__ import annotations

import socket
import stat
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fjernhjelp.control.package import build_package, fingerprint
from tests.packaging.conftest import DebianRoot, bumped

pytestmark = [pytest.mark.slow, pytest.mark.packaging]

SERVER_UNIT = "/lib/systemd/system/fjernhjelp-server.service"
SERVER_WANTS = "/etc/systemd/system/multi-user.target.wants/fjernhjelp-server.service"
AGENT_UNIT = "/lib/systemd/system/fjernhjelp-agent.service"
AGENT_WANTS = "/etc/systemd/system/multi-user.target.wants/fjernhjelp-agent.service"
# Stands in for systemd's systemctl, which the throwaway Debian has not: records each call.
SYSTEMCTL_STUB = '#!/bin/sh\necho "$@" >> /tmp/systemctl-calls\n'


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serving(root: DebianRoot, port: int) -> Iterator[str]:
    """`fjernhjelp-server serve` in the throwaway Debian (it shares this machine's network),
    as the service's account with the service's settings, until it answers /healthz."""
    url = f"http://127.0.0.1:{port}"
    log = root.at("/tmp/serve.log").open("w")
    server = subprocess.Popen(
        ["chroot", str(root.path), "/usr/sbin/fjernhjelp-server", "serve"],
        stdout=log, stderr=subprocess.STDOUT, env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, root.at("/tmp/serve.log").read_text()
            try:
                if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, root.at("/tmp/serve.log").read_text()
            time.sleep(0.2)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()
        root.at("/tmp/serve.log").unlink()


def owner_and_mode(path: Path) -> tuple[int, int, int]:
    info = path.stat()
    return info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)


def test_server_package_installs_upgrades_removes_and_purges(
    debian_root: DebianRoot, debs: dict[str, Path], tmp_path: Path
) -> None:
    root = debian_root
    first = debs["fjernhjelp-server"]
    version = first.name.split("_")[1]
    second = bumped(first, f"{version}+next1", tmp_path)
    for deb in (first, second):
        (root.at("/tmp") / deb.name).write_bytes(deb.read_bytes())

    installed = root.run("dpkg", "-i", f"/tmp/{first.name}")
    assert "database at revision" in installed.stdout + installed.stderr

    account = root.account("fjernhjelp")
    assert account is not None
    uid, gid = int(account[2]), int(account[3])
    assert 0 < uid < 1000 and account[5] == "/var/lib/fjernhjelp"
    assert account[6] == "/usr/sbin/nologin"
    assert owner_and_mode(root.at("/var/lib/fjernhjelp")) == (uid, gid, 0o700)
    database = root.at("/var/lib/fjernhjelp/fjernhjelp.db")
    assert database.stat().st_uid == uid
    assert owner_and_mode(root.at("/etc/fjernhjelp/fjernhjelp.env")) == (0, gid, 0o640)
    conffiles = root.run("dpkg-query", "-W", "-f=${Conffiles}", "fjernhjelp-server").stdout
    assert "/etc/fjernhjelp/fjernhjelp.env" in conffiles
    unit = root.at(SERVER_UNIT).read_text()
    assert "User=fjernhjelp\n" in unit
    assert "ExecStart=/usr/lib/fjernhjelp-server/bin/fjernhjelp serve" in unit
    # Enabled for the next boot by deb-systemd-helper; started by nothing (no systemd here).
    assert root.at(SERVER_WANTS).is_symlink()
    current = root.run("fjernhjelp-server", "db", "current").stdout
    applied, newest = (part.split(": ")[1] for part in current.strip().split("; "))
    assert applied == newest != "none"
    # The operator sets the port; the service's command serves pages, its browser
    # libraries and the Support client on what the package's dependencies bring.
    settings = root.at("/etc/fjernhjelp/fjernhjelp.env")
    port = free_port()
    settings.write_text(
        settings.read_text().replace("=127.0.0.1:8080", f"=127.0.0.1:{port}")
    )
    with serving(root, port) as url:
        assert httpx.get(url + "/", timeout=10).status_code == 200
        assert httpx.get(url + "/vendor/novnc/core/rfb.js", timeout=10).status_code == 200
        assert httpx.get(url + "/vendor/xterm/lib/xterm.js", timeout=10).status_code == 200

    upgraded = root.run("dpkg", "-i", f"/tmp/{second.name}")
    assert f"database at revision {newest} (was {newest})" in upgraded.stdout + upgraded.stderr
    assert root.account("fjernhjelp") == account
    assert database.exists()
    assert owner_and_mode(root.at("/etc/fjernhjelp/fjernhjelp.env")) == (0, gid, 0o640)

    root.run("dpkg", "-r", "fjernhjelp-server")
    # Removal keeps the data, the settings and the account; the program goes, bytecode too.
    assert not root.at("/usr/lib/fjernhjelp-server").exists()
    assert not root.at(SERVER_UNIT).exists()
    assert database.exists() and root.at("/etc/fjernhjelp/fjernhjelp.env").exists()
    assert root.account("fjernhjelp") == account

    root.run("dpkg", "-P", "fjernhjelp-server")
    assert root.account("fjernhjelp") is None and root.group("fjernhjelp") is None
    for deb in (first, second):
        (root.at("/tmp") / deb.name).unlink()
    assert root.leftovers() == []


def test_agent_package_installs_the_program_and_enrols_only_from_an_installer_package(
    debian_root: DebianRoot, debs: dict[str, Path]
) -> None:
    root = debian_root
    deb = debs["fjernhjelp-agent"]
    (root.at("/tmp") / deb.name).write_bytes(deb.read_bytes())
    stub = root.at("/usr/local/sbin/systemctl")
    stub.write_text(SYSTEMCTL_STUB)
    stub.chmod(0o755)

    root.run("dpkg", "-i", f"/tmp/{deb.name}")
    assert "install" in root.run("fjernhjelp", "agent", "--help").stdout
    unit = root.at(AGENT_UNIT).read_text()
    assert "ConditionPathExists=/etc/fjernhjelp-agent/agent.toml" in unit
    # Nothing enrolled, enabled, or made for it yet.
    assert root.account("fjernhjelp-agent") is None
    assert not root.at("/etc/fjernhjelp-agent").exists()
    assert not root.at(AGENT_WANTS).exists()
    assert not root.at("/tmp/systemctl-calls").exists()

    server_key = Ed25519PrivateKey.generate()
    package = build_package(
        server_key,
        server_url="https://fjernhjelp.example.no",
        enrolment_token="tok-deb",
        group="Legekontor Nord",
        organisation="Nord legesenter",
        expires_at=datetime.now(UTC) + timedelta(days=1),
    )
    root.at("/tmp/agent-package.json").write_bytes(package)
    root.run(
        "fjernhjelp", "agent", "install", "/tmp/agent-package.json",
        "--expect-fingerprint", fingerprint(server_key.public_key()),
    )  # fmt: skip
    account = root.account("fjernhjelp-agent")
    assert account is not None
    uid, gid = int(account[2]), int(account[3])
    assert owner_and_mode(root.at("/etc/fjernhjelp-agent")) == (uid, gid, 0o700)
    assert owner_and_mode(root.at("/var/lib/fjernhjelp-agent")) == (uid, gid, 0o700)
    assert owner_and_mode(root.at("/etc/fjernhjelp-agent/agent.toml"))[2] == 0o600
    enrolled = root.at("/etc/systemd/system/fjernhjelp-agent.service").read_text()
    assert "ExecStart=/usr/lib/fjernhjelp-agent/bin/python -m fjernhjelp agent run" in enrolled
    assert "enable --now fjernhjelp-agent.service" in root.at("/tmp/systemctl-calls").read_text()

    # Removing the package removes the enrolment the way `agent uninstall` does.
    root.run("dpkg", "-r", "fjernhjelp-agent")
    assert root.account("fjernhjelp-agent") is None
    assert not root.at("/etc/fjernhjelp-agent").exists()
    assert not root.at("/var/lib/fjernhjelp-agent").exists()
    assert not root.at("/etc/systemd/system/fjernhjelp-agent.service").exists()
    assert not root.at("/usr/lib/fjernhjelp-agent").exists()
    assert not root.at("/usr/bin/fjernhjelp").exists()
    assert "disable --now fjernhjelp-agent.service" in root.at("/tmp/systemctl-calls").read_text()

    root.run("dpkg", "-P", "fjernhjelp-agent")
    for path in (f"/tmp/{deb.name}", "/tmp/agent-package.json", "/tmp/systemctl-calls"):
        root.at(path).unlink()
    stub.unlink()
    assert root.leftovers() == []
