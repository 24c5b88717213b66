"""A throwaway Debian for the .deb files of `make deb`: an overlay over the minimal Debian
that `make deb-root` keeps in .cache/deb-root, so each test starts from the same fresh
system and what a test changed is exactly what its overlay's upper folder holds."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DEB_DIR = Path(os.environ.get("FJERNHJELP_DEB_DIR", REPO / "dist" / "deb"))
BASE_ROOT = Path(os.environ.get("FJERNHJELP_DEB_ROOT", REPO / ".cache" / "deb-root"))

# What a package's install and purge may leave changed in the system besides files with
# their old content: dpkg's records and logs, deb-systemd-helper's records and the empty
# folders it makes for them in /etc/systemd/system (there on any machine with systemd),
# the lock files of adduser (in /run, a tmpfs on a real machine) and of the shadow tools,
# and the shadow tools' backups of the account files.
BOOKKEEPING = (
    "var/lib/dpkg/",
    "var/log/",
    "var/cache/debconf/",
    "var/cache/ldconfig/",
    "var/lib/systemd/deb-systemd-helper-enabled/",
    "run/",
)
SHADOW_BOOKKEEPING = {
    "etc/.pwd.lock", "etc/passwd-", "etc/group-", "etc/shadow-", "etc/gshadow-",
    "etc/subuid-", "etc/subgid-",
}  # fmt: skip


@dataclass
class DebianRoot:
    path: Path
    base: Path
    changes: Path

    def run(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            ["chroot", str(self.path), *argv],
            capture_output=True,
            text=True,
            check=False,
            env={
                "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "LANG": "C.UTF-8",
                "DEBIAN_FRONTEND": "noninteractive",
                "HOME": "/root",
            },
        )
        if check and done.returncode != 0:
            raise AssertionError(f"{argv} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
        return done

    def at(self, path: str) -> Path:
        return self.path / path.lstrip("/")

    def account(self, name: str) -> list[str] | None:
        for line in self.at("/etc/passwd").read_text().splitlines():
            fields = line.split(":")
            if fields[0] == name:
                return fields
        return None

    def group(self, name: str) -> list[str] | None:
        for line in self.at("/etc/group").read_text().splitlines():
            if line.split(":")[0] == name:
                return line.split(":")
        return None

    def leftovers(self) -> list[str]:
        """Everything that differs from the fresh system, less the bookkeeping above."""
        left = []
        for folder, dirs, files in os.walk(self.changes):
            for name in dirs + files:
                path = Path(folder) / name
                relative = str(path.relative_to(self.changes))
                base = self.base / relative
                if relative in SHADOW_BOOKKEEPING or (relative + "/").startswith(BOOKKEEPING):
                    continue
                if path.is_dir() and not path.is_symlink():
                    # A folder counts when it is new and empty (one with files in it shows
                    # them); deb-systemd-helper's empty ones in /etc/systemd/system do not.
                    new_and_empty = not base.is_dir() and not any(path.iterdir())
                    if new_and_empty and not relative.startswith("etc/systemd/system/"):
                        left.append(relative + "/")
                    continue
                unchanged = base.is_file() and not base.is_symlink() and path.is_file()
                if unchanged and base.read_bytes() == path.read_bytes():
                    continue
                left.append(relative)
        return sorted(left)


@pytest.fixture
def debs() -> dict[str, Path]:
    found = {p.name.split("_")[0]: p for p in DEB_DIR.glob("fjernhjelp-*.deb")}
    if {"fjernhjelp-server", "fjernhjelp-agent"} - found.keys() or not (
        BASE_ROOT / ".complete"
    ).exists():
        if os.environ.get("FJERNHJELP_SKIP_DEB") == "1":
            pytest.skip("FJERNHJELP_SKIP_DEB=1")
        pytest.fail(
            f"no packages in {DEB_DIR} or no Debian in {BASE_ROOT}: run `make deb deb-root`"
            " (make test does), or set FJERNHJELP_SKIP_DEB=1 to skip on purpose"
        )
    if os.geteuid() != 0:
        pytest.skip("installing into a chroot takes root")
    return found


@pytest.fixture
def debian_root(tmp_path: Path, debs: dict[str, Path]) -> Iterator[DebianRoot]:
    upper, work, merged = (tmp_path / n for n in ("upper", "work", "root"))
    for folder in (upper, work, merged):
        folder.mkdir()
    subprocess.run(
        ["mount", "-t", "overlay", "overlay", "-o",
         f"lowerdir={BASE_ROOT},upperdir={upper},workdir={work}", str(merged)],
        check=True,
    )  # fmt: skip
    try:
        yield DebianRoot(merged, BASE_ROOT, upper)
    finally:
        subprocess.run(["umount", "--lazy", str(merged)], check=False)


def bumped(deb: Path, version: str, out: Path) -> Path:
    """The same package with another version: what the next release's upgrade installs."""
    tree = out / "tree"
    subprocess.run(["dpkg-deb", "-R", str(deb), str(tree)], check=True)
    control = tree / "DEBIAN" / "control"
    control.write_text(
        "".join(
            f"Version: {version}\n" if line.startswith("Version:") else line
            for line in control.read_text().splitlines(keepends=True)
        )
    )
    target = out / deb.name.replace(deb.name.split("_")[1], version)
    subprocess.run(
        ["dpkg-deb", "--root-owner-group", "-Znone", "-b", str(tree), str(target)],
        check=True,
        capture_output=True,
    )
    return target
