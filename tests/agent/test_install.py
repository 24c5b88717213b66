"""Installing into a folder as the root, with system commands recorded instead of run."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from typer.testing import CliRunner

from fjernhjelp.agent import sysinfo
from fjernhjelp.agent.config import load_config
from fjernhjelp.agent.identity import fingerprint, load_identity
from fjernhjelp.agent.install import (
    HostSystem,
    InstallError,
    Layout,
    install,
    install_local,
    uninstall,
)
from fjernhjelp.cli import agent as agent_cli
from fjernhjelp.cli import app
from fjernhjelp.control.package import build_package, read_package

SERVER_KEY = Ed25519PrivateKey.generate()
PACKAGE = build_package(
    SERVER_KEY,
    server_url="https://fjernhjelp.example.no",
    enrolment_token="tok-install",
    group="Tannlege Sør",
    organisation="Sør tannhelse",
    expires_at=datetime.now(UTC) + timedelta(days=1),
)


class RecordingSystem:
    """Records commands; knows the accounts that exist (and that useradd makes one)."""

    def __init__(self, users: dict[str, tuple[int, int]] | None = None, fail: str = "") -> None:
        self.commands: list[list[str]] = []
        self.users = dict(users or {})
        self.fail = fail

    def run(self, argv: list[str]) -> int:  # type: ignore[override]
        self.commands.append(list(argv))
        if self.fail and self.fail in argv:
            return 1
        if argv[0] == "useradd":
            self.users[argv[-1]] = (os.geteuid(), os.getegid())
        if argv[0] == "userdel":
            self.users.pop(argv[-1], None)
        return 0

    def lookup_user(self, name: str) -> tuple[int, int] | None:
        return self.users.get(name)


def tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.fixture
def root(tmp_path: Path) -> Path:
    path = tmp_path / "root"
    (path / "etc").mkdir(parents=True)  # a machine has /etc; the rest install must create
    (path / "etc" / "hostname").write_text("kontor-pc-3\n")
    return path


def test_install_writes_unit_config_and_account_and_uninstall_leaves_nothing(root: Path) -> None:
    system = RecordingSystem()
    home = root / "home"
    home.mkdir()
    before = tree(root)
    report = install(
        read_package(PACKAGE),
        layout=Layout(root),
        ops=system,
        file_roots=[Path("/home")],
        python="/opt/fjernhjelp/bin/python",
    )
    layout = Layout(root)
    unit = layout.unit_file.read_text()
    assert unit.splitlines()[1:] == [
        "[Unit]",
        "Description=fjernhjelp remote assistance agent (group Tannlege Sør)",
        "After=network-online.target",
        "Wants=network-online.target",
        "",
        "[Service]",
        "Type=simple",
        "ExecStart=/opt/fjernhjelp/bin/python -m fjernhjelp agent run "
        "--config /etc/fjernhjelp-agent/agent.toml",
        "User=fjernhjelp-agent",
        "Group=fjernhjelp-agent",
        "Restart=always",
        "RestartSec=5",
        "NoNewPrivileges=yes",
        "UMask=0077",
        "ProtectSystem=full",
        "ReadWritePaths=/etc/fjernhjelp-agent /var/lib/fjernhjelp-agent /home",
        "",
        "[Install]",
        "WantedBy=multi-user.target",
    ]
    assert "xhost +si:localuser:fjernhjelp-agent" in layout.autostart_file.read_text()
    config = load_config(layout.config_file)
    assert config.enrolment_token == "tok-install" and config.group == "Tannlege Sør"
    assert config.data_dir == Path("/var/lib/fjernhjelp-agent")
    assert config.file_roots == [Path("/home")]
    assert layout.config_file.stat().st_mode & 0o777 == 0o600
    assert layout.config_dir.stat().st_mode & 0o777 == 0o700
    assert layout.data_dir.stat().st_mode & 0o777 == 0o700
    assert system.commands == [
        [
            "useradd", "--system", "--user-group", "--no-create-home",
            "--home-dir", "/var/lib/fjernhjelp-agent", "--shell", "/usr/sbin/nologin",
            "--comment", "fjernhjelp agent", "fjernhjelp-agent",
        ],
        ["systemctl", "daemon-reload"],
        ["systemctl", "enable", "--now", "fjernhjelp-agent.service"],
    ]  # fmt: skip
    assert report.created_user and report.account == "fjernhjelp-agent"
    # The agent's first start makes its key in the data folder; uninstall removes that too.
    (layout.data_dir / "identity.key").write_bytes(b"k" * 32)

    with pytest.raises(InstallError, match="already installed"):
        install(read_package(PACKAGE), layout=layout, ops=system)

    system.commands.clear()
    uninstall(layout=layout, ops=system)
    assert tree(root) == before
    assert system.commands == [
        ["systemctl", "disable", "--now", "fjernhjelp-agent.service"],
        ["systemctl", "daemon-reload"],
        ["userdel", "fjernhjelp-agent"],
    ]
    with pytest.raises(InstallError, match="not installed"):
        uninstall(layout=layout, ops=system)


def test_an_existing_account_is_used_and_kept(root: Path) -> None:
    system = RecordingSystem(users={"fjernhjelp-agent": (os.geteuid(), os.getegid())})
    report = install(read_package(PACKAGE), layout=Layout(root), ops=system)
    assert not report.created_user and system.commands[0][0] == "systemctl"
    uninstall(layout=Layout(root), ops=system)
    assert "userdel" not in [c[0] for c in system.commands]
    assert "fjernhjelp-agent" in system.users


def test_a_privileged_install_runs_as_root_without_an_account(root: Path) -> None:
    system = RecordingSystem()
    before = tree(root)
    install(read_package(PACKAGE), layout=Layout(root), ops=system, privileged=True)
    unit = Layout(root).unit_file.read_text()
    assert "User=root" in unit and "NoNewPrivileges=yes" in unit
    assert "ProtectSystem" not in unit  # a root shell must be able to maintain the system
    assert not Layout(root).autostart_file.exists()
    assert [c[0] for c in system.commands] == ["systemctl", "systemctl"]
    uninstall(layout=Layout(root), ops=system)
    assert tree(root) == before


def test_a_failing_systemctl_stops_the_install_with_a_clear_error(root: Path) -> None:
    before = tree(root)
    with pytest.raises(InstallError, match=r"enable --now fjernhjelp-agent\.service failed"):
        install(read_package(PACKAGE), layout=Layout(root), ops=RecordingSystem(fail="enable"))
    uninstall(layout=Layout(root), ops=RecordingSystem())  # and what it wrote can be removed
    assert tree(root) == before


# --- the command line -----------------------------------------------------------------------


@pytest.fixture
def cli_system(monkeypatch: pytest.MonkeyPatch) -> RecordingSystem:
    system = RecordingSystem()
    monkeypatch.setattr(agent_cli, "system_ops", system)
    return system


def test_cli_install_with_the_expected_fingerprint_and_uninstall(
    root: Path, tmp_path: Path, cli_system: RecordingSystem
) -> None:
    package_file = tmp_path / "agent-package.json"
    package_file.write_bytes(PACKAGE)
    expected = fingerprint(SERVER_KEY.public_key())
    before = tree(root)
    result = CliRunner().invoke(
        app,
        ["agent", "install", str(package_file), "--expect-fingerprint", expected,
         "--root", str(root), "--file-root", "/srv/share"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert expected in result.output and "matches" in result.output
    assert load_config(Layout(root).config_file).file_roots == [Path("/srv/share")]
    result = CliRunner().invoke(app, ["agent", "uninstall", "--yes", "--root", str(root)])
    assert result.exit_code == 0, result.output
    assert tree(root) == before


def test_cli_refuses_a_package_for_another_server_key_and_writes_nothing(
    root: Path, tmp_path: Path, cli_system: RecordingSystem
) -> None:
    package_file = tmp_path / "agent-package.json"
    package_file.write_bytes(PACKAGE)
    other = fingerprint(Ed25519PrivateKey.generate().public_key())
    before = tree(root)
    result = CliRunner().invoke(
        app,
        ["agent", "install", str(package_file), "--expect-fingerprint", other, "--root", str(root)],
    )
    assert result.exit_code == 2 and "fingerprint" in result.output
    assert tree(root) == before and cli_system.commands == []


def test_cli_asks_before_trusting_a_key_and_a_no_writes_nothing(
    root: Path, tmp_path: Path, cli_system: RecordingSystem
) -> None:
    package_file = tmp_path / "agent-package.json"
    package_file.write_bytes(PACKAGE)
    before = tree(root)
    result = CliRunner().invoke(
        app, ["agent", "install", str(package_file), "--root", str(root)], input="n\n"
    )
    assert result.exit_code != 0 and fingerprint(SERVER_KEY.public_key()) in result.output
    assert "Install and trust this server?" in result.output
    assert tree(root) == before and cli_system.commands == []


def test_cli_inspect_shows_the_package(tmp_path: Path) -> None:
    package_file = tmp_path / "p.json"
    package_file.write_bytes(PACKAGE)
    result = CliRunner().invoke(app, ["agent", "inspect", str(package_file)])
    assert result.exit_code == 0
    assert "https://fjernhjelp.example.no" in result.output and "Tannlege Sør" in result.output


# --- system information -----------------------------------------------------------------------


def test_system_information_describes_this_machine() -> None:
    import socket

    import fjernhjelp

    info = sysinfo.collect()
    data = info.to_dict()
    assert data["hostname"] == socket.gethostname()
    assert data["agent_version"] == fjernhjelp.__version__
    assert data["os_name"] and data["kernel"] == os.uname().release
    assert isinstance(data["users"], list) and data["memory_bytes"] > 0
    assert datetime.fromisoformat(data["boot_time"]) < datetime.now(UTC)


# --- without systemd ---------------------------------------------------------------------


def test_cli_install_without_a_service_writes_config_and_key_and_starts_nothing(
    tmp_path: Path, cli_system: RecordingSystem
) -> None:
    package_file = tmp_path / "agent-package.json"
    package_file.write_bytes(PACKAGE)
    target = tmp_path / "agent"
    result = CliRunner().invoke(
        app,
        ["agent", "install", "--no-service", "--config-dir", str(target), str(package_file),
         "--expect-fingerprint", fingerprint(SERVER_KEY.public_key()),
         "--file-root", "/srv/share"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert cli_system.commands == []  # no useradd, no systemctl
    assert tree(target) == {"agent.toml", "identity.key"}
    assert target.stat().st_mode & 0o777 == 0o700
    assert (target / "agent.toml").stat().st_mode & 0o777 == 0o600
    assert (target / "identity.key").stat().st_mode & 0o777 == 0o600
    config = load_config(target / "agent.toml")
    assert config.data_dir == target and config.identity_key_path == target / "identity.key"
    assert config.enrolment_token == "tok-install" and config.file_roots == [Path("/srv/share")]
    assert f"fjernhjelp agent run --config {target / 'agent.toml'}" in result.output
    key = load_identity(target / "identity.key")
    assert key.fingerprint in result.output

    # Never over an existing install: the token and key there stay as they are.
    before = (target / "agent.toml").read_bytes(), (target / "identity.key").read_bytes()
    again = CliRunner().invoke(
        app, ["agent", "install", "--no-service", "--config-dir", str(target),
              str(package_file), "--yes"],
    )  # fmt: skip
    assert again.exit_code == 1 and "already set up" in again.output
    assert ((target / "agent.toml").read_bytes(), (target / "identity.key").read_bytes()) == before


def test_install_without_a_service_refuses_a_folder_others_can_write(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    with pytest.raises(InstallError, match="must be 0700"):
        install_local(read_package(PACKAGE), config_dir=shared)
    assert list(shared.iterdir()) == []
    with pytest.raises(InstallError, match="does not exist"):
        install_local(read_package(PACKAGE), config_dir=tmp_path / "no" / "such")
    # Nor inside a folder others may write to (they could swap ours for theirs), unless
    # it is sticky like /tmp.
    with pytest.raises(InstallError, match="writable by others"):
        install_local(read_package(PACKAGE), config_dir=shared / "agent")
    assert list(shared.iterdir()) == []
    shared.chmod(0o1777)
    assert install_local(read_package(PACKAGE), config_dir=shared / "agent").config_file.exists()


def test_no_service_and_config_dir_go_together(tmp_path: Path, cli_system: RecordingSystem) -> None:
    package_file = tmp_path / "p.json"
    package_file.write_bytes(PACKAGE)
    alone = CliRunner().invoke(app, ["agent", "install", "--no-service", str(package_file)])
    assert alone.exit_code == 2 and "go together" in alone.output
    privileged = CliRunner().invoke(
        app, ["agent", "install", "--no-service", "--config-dir", str(tmp_path / "a"),
              "--privileged", str(package_file)],
    )  # fmt: skip
    assert privileged.exit_code == 2 and not (tmp_path / "a").exists()
    assert cli_system.commands == []


def test_a_missing_system_program_is_a_failed_command_not_a_crash() -> None:
    # No systemctl in a container or chroot: install stops naming the command, and
    # uninstall (the agent package's prerm) goes on past it.
    assert HostSystem().run(["fjernhjelp-no-such-program-here", "daemon-reload"]) == 127
