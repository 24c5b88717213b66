"""Installing the agent as a systemd service from a package, and removing it without a trace.

What an install writes (paths below the install root, ``/`` on a real machine):

- ``etc/fjernhjelp-agent/agent.toml`` (0600): the config from the package;
- ``etc/fjernhjelp-agent/install.json``: what this install created, so uninstall removes
  exactly that (including folders and the account it had to create, and nothing else);
- ``var/lib/fjernhjelp-agent/`` (0700): the data folder; the identity key is made there
  by the agent on first start;
- ``etc/systemd/system/fjernhjelp-agent.service``: the unit;
- from the one-file installer only (``agent.onefile``): ``opt/fjernhjelp-agent/fjernhjelp-agent``
  (0755, root's), a copy of the one-file build without the package it carried, which the
  unit runs, so the machine needs no Python;
- unprivileged installs only: ``etc/xdg/autostart/fjernhjelp-agent-display.desktop``,
  which at each desktop login runs ``xhost +si:localuser:fjernhjelp-agent`` so the agent
  can show the consent dialog and indicator on that user's display without being root.

The account. By default the agent runs as its own system account ``fjernhjelp-agent``
(created if missing, nologin), which owns the config and data folder, so its identity key
is readable by it alone. Such an agent can only start shells as itself ("service") and
refuses shells as the logged-in user. ``--privileged`` runs it as root instead, which a
shell as the logged-in user needs (switching user takes root); the grant still decides
what a technician gets. Both use ``NoNewPrivileges``: a shell started as the desktop user
cannot gain rights through sudo or other setuid programs.

System changes go through a :class:`SystemOps` (``useradd``, ``systemctl`` and friends),
so tests install into a folder and record the commands instead of running them.

Without systemd (``agent install --no-service --config-dir DIR``, :func:`install_local`)
the install only writes ``DIR/agent.toml`` (0600) and the identity key
``DIR/identity.key`` (0600) into ``DIR`` (0700), as the account that runs it, and starts
nothing: whatever supervises processes on that machine runs
``fjernhjelp agent run --config DIR/agent.toml`` as that same account.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import shutil
import stat
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from fjernhjelp.agent.config import AgentConfig, save_config
from fjernhjelp.agent.identity import load_or_create_identity
from fjernhjelp.control.package import InstallerPackage

SERVICE = "fjernhjelp-agent"
SERVICE_USER = "fjernhjelp-agent"
UNIT_NAME = f"{SERVICE}.service"


class InstallError(Exception):
    pass


class SystemOps(Protocol):
    def run(self, argv: Sequence[str]) -> int:
        """Run a system command; returns its exit status."""
        ...

    def lookup_user(self, name: str) -> tuple[int, int] | None:
        """(uid, gid) of an account, or None."""
        ...


class HostSystem:
    """The real machine."""

    def run(self, argv: Sequence[str]) -> int:
        try:
            return subprocess.run(list(argv), check=False).returncode  # noqa: S603 - fixed argv
        except FileNotFoundError:
            # No such program (systemctl in a container or chroot without systemd): a failed
            # command, as a shell reports it, so install stops naming it and uninstall (the
            # agent package's prerm runs it) goes on removing the rest.
            return 127

    def lookup_user(self, name: str) -> tuple[int, int] | None:
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            return None
        return entry.pw_uid, entry.pw_gid


@dataclass(frozen=True)
class Layout:
    """Where things go, below ``root`` (``/`` on a real machine, a folder in tests)."""

    root: Path = Path("/")

    def at(self, system_path: str) -> Path:
        return self.root / system_path.lstrip("/")

    @property
    def config_dir(self) -> Path:
        return self.at(f"/etc/{SERVICE}")

    @property
    def config_file(self) -> Path:
        return self.config_dir / "agent.toml"

    @property
    def manifest(self) -> Path:
        return self.config_dir / "install.json"

    @property
    def data_dir(self) -> Path:
        return self.at(f"/var/lib/{SERVICE}")

    @property
    def program_dir(self) -> Path:
        return self.at(f"/opt/{SERVICE}")

    @property
    def program_file(self) -> Path:
        return self.program_dir / SERVICE

    @property
    def unit_file(self) -> Path:
        return self.at(f"/etc/systemd/system/{UNIT_NAME}")

    @property
    def autostart_file(self) -> Path:
        return self.at(f"/etc/xdg/autostart/{SERVICE}-display.desktop")


@dataclass(frozen=True)
class ProgramCopy:
    """The one-file build to run the agent from: the first ``size`` bytes of ``source``
    (the downloaded file without the package appended to it, whose enrolment token stays
    in the 0600 config alone)."""

    source: Path
    size: int


@dataclass
class InstallReport:
    config_file: Path
    unit_file: Path
    account: str
    created_user: bool
    commands: list[list[str]] = field(default_factory=list)


def unit_text(
    *, group: str, program: str, account: str, privileged: bool, file_roots: Sequence[Path]
) -> str:
    """``program`` is the command that has ``run`` (``python -m fjernhjelp agent``, or the
    one-file copy)."""
    hardening = [
        "NoNewPrivileges=yes",
        "UMask=0077",
    ]
    if not privileged:
        # Root-run agents serve root shells, which must be able to change the system.
        writable = [f"/etc/{SERVICE}", f"/var/lib/{SERVICE}", *map(str, file_roots)]
        hardening += ["ProtectSystem=full", "ReadWritePaths=" + " ".join(writable)]
    return "\n".join(
        [
            "# Written by `fjernhjelp agent install`; `fjernhjelp agent uninstall` removes it.",
            "[Unit]",
            f"Description=fjernhjelp remote assistance agent (group {group})",
            "After=network-online.target",
            "Wants=network-online.target",
            "",
            "[Service]",
            "Type=simple",
            f"ExecStart={program} run --config /etc/{SERVICE}/agent.toml",
            f"User={account}",
            f"Group={account}",
            "Restart=always",
            "RestartSec=5",
            # The default KillMode=control-group also ends every shell on stop.
            *hardening,
            "",
            "[Install]",
            "WantedBy=multi-user.target",
            "",
        ]
    )


AUTOSTART = f"""[Desktop Entry]
Type=Application
Name=fjernhjelp agent display access
Comment=Lets the fjernhjelp agent show its consent dialog and session indicator
Exec=xhost +si:localuser:{SERVICE_USER}
NoDisplay=true
X-GNOME-Autostart-Phase=Initialization
"""


def _mkdirs(path: Path, created: list[str], layout: Layout) -> None:
    missing = []
    probe = path
    while not probe.exists():
        missing.append(probe)
        probe = probe.parent
    for folder in reversed(missing):
        folder.mkdir(mode=0o755)
        created.append(str(folder.relative_to(layout.root)))


def _write(path: Path, text: str, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        os.fchmod(fd, mode)
        fh.write(text)


def _copy_program(program: ProgramCopy, target: Path) -> None:
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o755)
    with os.fdopen(fd, "wb") as out, program.source.open("rb") as source:
        os.fchmod(fd, 0o755)
        remaining = program.size
        while remaining:
            chunk = source.read(min(remaining, 1 << 20))
            if not chunk:
                raise InstallError(f"{program.source} ended early")
            out.write(chunk)
            remaining -= len(chunk)


def _run(ops: SystemOps, argv: list[str], report: InstallReport) -> None:
    report.commands.append(argv)
    status = ops.run(argv)
    if status != 0:
        raise InstallError(f"{' '.join(argv)} failed with status {status}")


def install(
    package: InstallerPackage,
    *,
    layout: Layout | None = None,
    ops: SystemOps | None = None,
    privileged: bool = False,
    file_roots: Sequence[Path] = (),
    python: str = sys.executable,
    program: ProgramCopy | None = None,
) -> InstallReport:
    """Install from a checked package (see ``package.read_package``); the unit runs
    ``python -m fjernhjelp agent``, or with ``program`` a copy of the one-file build."""
    layout = layout or Layout()
    ops = ops or HostSystem()
    if layout.config_file.exists() or layout.unit_file.exists() or layout.manifest.exists():
        raise InstallError("the agent is already installed; uninstall it first")
    if program is not None and layout.program_dir.exists():
        raise InstallError(f"{layout.program_dir} exists; uninstall the agent first")
    account = "root" if privileged else SERVICE_USER
    report = InstallReport(layout.config_file, layout.unit_file, account, created_user=False)
    if not privileged and ops.lookup_user(SERVICE_USER) is None:
        _run(
            ops,
            [
                "useradd",
                "--system",
                "--user-group",
                "--no-create-home",
                "--home-dir",
                f"/var/lib/{SERVICE}",
                "--shell",
                "/usr/sbin/nologin",
                "--comment",
                "fjernhjelp agent",
                SERVICE_USER,
            ],
            report,
        )
        report.created_user = True
    ids = (0, 0) if privileged else ops.lookup_user(SERVICE_USER)
    if ids is None:
        raise InstallError(f"the account {SERVICE_USER} could not be created")
    created_dirs: list[str] = []
    _mkdirs(layout.config_dir.parent, created_dirs, layout)
    _mkdirs(layout.data_dir.parent, created_dirs, layout)
    _mkdirs(layout.unit_file.parent, created_dirs, layout)
    if not privileged:
        _mkdirs(layout.autostart_file.parent, created_dirs, layout)
    folders = [layout.data_dir]
    command = f"{python} -m fjernhjelp agent"
    if program is not None:
        _mkdirs(layout.program_dir.parent, created_dirs, layout)
        layout.program_dir.mkdir(mode=0o755)
        folders.append(layout.program_dir)
        _copy_program(program, layout.program_file)
        command = f"/opt/{SERVICE}/{SERVICE}"
    layout.config_dir.mkdir(mode=0o700)
    layout.data_dir.mkdir(mode=0o700)
    config = AgentConfig.from_package(
        package, data_dir=Path(f"/var/lib/{SERVICE}"), file_roots=list(file_roots)
    )
    save_config(config, layout.config_file)
    files = [layout.unit_file]
    _write(
        layout.unit_file,
        unit_text(
            group=package.group,
            program=command,
            account=account,
            privileged=privileged,
            file_roots=file_roots,
        ),
        0o644,
    )
    if not privileged:
        _write(layout.autostart_file, AUTOSTART, 0o644)
        files.append(layout.autostart_file)
    manifest = {
        "created_user": report.created_user,
        "account": account,
        "files": [str(p.relative_to(layout.root)) for p in files],
        "folders": [str(p.relative_to(layout.root)) for p in folders],
        "created_parents": created_dirs,
    }
    _write(layout.manifest, json.dumps(manifest, indent=2) + "\n", 0o600)
    for path in (layout.config_dir, layout.data_dir, layout.config_file, layout.manifest):
        os.chown(path, *ids)
    _run(ops, ["systemctl", "daemon-reload"], report)
    _run(ops, ["systemctl", "enable", "--now", UNIT_NAME], report)
    return report


def uninstall(*, layout: Layout | None = None, ops: SystemOps | None = None) -> list[list[str]]:
    """Stop and remove the agent and everything its install made; returns the commands run.

    The identity key goes too: a reinstalled agent enrols again as a new machine.
    """
    layout = layout or Layout()
    ops = ops or HostSystem()
    try:
        manifest = json.loads(layout.manifest.read_text())
    except FileNotFoundError:
        manifest = None
    if manifest is None and not layout.unit_file.exists() and not layout.config_dir.exists():
        raise InstallError("the agent is not installed")
    commands: list[list[str]] = []

    def run(argv: list[str]) -> None:
        commands.append(argv)
        ops.run(argv)  # a unit that is already stopped or gone is not a reason to stop here

    run(["systemctl", "disable", "--now", UNIT_NAME])
    files = [layout.unit_file, layout.autostart_file]
    folders = [layout.config_dir, layout.data_dir, layout.program_dir]
    if manifest:
        files += [layout.root / p for p in manifest.get("files", [])]
        folders += [layout.root / p for p in manifest.get("folders", [])]
    for path in files:
        path.unlink(missing_ok=True)
    for folder in folders:
        if folder.is_dir() and not folder.is_symlink():
            shutil.rmtree(folder)
    run(["systemctl", "daemon-reload"])
    if manifest and manifest.get("created_user"):
        run(["userdel", SERVICE_USER])
    for relative in reversed((manifest or {}).get("created_parents", [])):
        folder = layout.root / relative
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
    return commands


@dataclass(frozen=True)
class LocalInstall:
    config_file: Path
    identity_key: Path
    identity_fingerprint: str


def install_local(
    package: InstallerPackage, *, config_dir: Path, file_roots: Sequence[Path] = ()
) -> LocalInstall:
    """Write the config and identity key into ``config_dir`` and start nothing.

    The folder is made 0700 if missing. An existing one must belong to this account and
    be closed to others: whoever can write in it can swap the config (and so the server
    the agent trusts) or read the key. An existing config is never overwritten.
    """
    config_dir = config_dir.absolute()
    try:
        parent = config_dir.parent.stat()
    except FileNotFoundError as exc:
        raise InstallError(f"{config_dir.parent} does not exist") from exc
    if parent.st_mode & 0o022 and not parent.st_mode & stat.S_ISVTX:
        # Others could rename the folder away and put their own (and config) in its place.
        raise InstallError(f"{config_dir.parent} is writable by others; choose another place")
    with contextlib.suppress(FileExistsError):
        config_dir.mkdir(mode=0o700, parents=False)
    st = config_dir.lstat()
    if not stat.S_ISDIR(st.st_mode):
        raise InstallError(f"{config_dir} is not a folder")
    if st.st_uid != os.geteuid():
        raise InstallError(f"{config_dir} belongs to uid {st.st_uid}, not to this account")
    if st.st_mode & 0o077:
        raise InstallError(f"{config_dir} has mode {stat.S_IMODE(st.st_mode):04o}; it must be 0700")
    config_file = config_dir / "agent.toml"
    if config_file.exists() or config_file.is_symlink():
        raise InstallError(f"{config_file} exists: the agent is already set up there")
    config = AgentConfig.from_package(
        package, data_dir=config_dir, file_roots=[p.absolute() for p in file_roots]
    )
    identity = load_or_create_identity(config.identity_key_path)
    save_config(config, config_file)
    return LocalInstall(config_file, config.identity_key_path, identity.fingerprint)
