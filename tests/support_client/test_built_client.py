"""The built one-file client, run as an end user would: it says whom it would join, and
leaves the home and temporary folders exactly as it found them, with no process behind.

Building takes about a minute on a 2-core machine, so these tests are skipped unless
asked for: ``FJERNHJELP_SUPPORT_BUILD=1`` builds the client once per test session, and
``FJERNHJELP_SUPPORT_CLIENT=dist/fjernhjelp-support-linux-x86_64`` uses one already built
(``make support-client``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fjernhjelp.control.package import fingerprint
from fjernhjelp.support.stamp import stamp

pytestmark = pytest.mark.support_build


@pytest.fixture(scope="session")
def generic_client(tmp_path_factory: pytest.TempPathFactory) -> Path:
    given = os.environ.get("FJERNHJELP_SUPPORT_CLIENT")
    if given:
        return Path(given).resolve()
    if os.environ.get("FJERNHJELP_SUPPORT_BUILD") != "1":
        pytest.skip("set FJERNHJELP_SUPPORT_BUILD=1 (or FJERNHJELP_SUPPORT_CLIENT) to run")
    out = tmp_path_factory.mktemp("support-dist")
    subprocess.run(
        [sys.executable, "-m", "fjernhjelp.support.build", "--out", str(out)], check=True
    )
    (built,) = out.iterdir()
    return built


def listing(root: Path) -> list[tuple[str, int, int]]:
    """Every path under ``root`` with its mode and size: what "left nothing" compares."""
    found = []
    for folder, dirs, files in os.walk(root):
        for name in sorted(dirs + files):
            path = Path(folder) / name
            info = path.lstat()
            found.append((str(path.relative_to(root)), info.st_mode, info.st_size))
    return sorted(found)


def processes_in_group(group: int) -> list[int]:
    left = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.getpgid(int(entry.name)) == group:
                    left.append(int(entry.name))
            except ProcessLookupError:
                continue
    return left


def run_as_end_user(client: Path, home: Path, temp: Path, *args: str) -> tuple[int, str, str]:
    env = {"HOME": str(home), "TMPDIR": str(temp), "PATH": "/usr/bin:/bin", "LANG": "en_GB.UTF-8"}
    process = subprocess.Popen(
        [str(client), *args],
        env=env,
        cwd=home,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group: whatever it started is findable
    )
    out, err = process.communicate(timeout=120)
    assert processes_in_group(process.pid) == []
    return process.returncode, out, err


@pytest.fixture
def end_user(tmp_path: Path) -> tuple[Path, Path]:
    home, temp = tmp_path / "home", tmp_path / "tmp"
    home.mkdir()
    temp.mkdir()
    (home / ".bashrc").write_text("# the user's own\n")
    return home, temp


def test_the_stamped_client_runs_and_leaves_nothing(
    generic_client: Path, end_user: tuple[Path, Path], tmp_path: Path
) -> None:
    home, temp = end_user
    key = Ed25519PrivateKey.generate()
    client = tmp_path / "fjernhjelp-support"
    client.write_bytes(stamp(generic_client.read_bytes(), "https://hjelp.example.no", key))
    client.chmod(0o755)
    before = (listing(home), listing(temp))
    code, out, err = run_as_end_user(client, home, temp, "482 193 775")
    assert code == 3, err
    assert out.splitlines() == [
        "Service: https://hjelp.example.no",
        f"The service's key (pinned): {fingerprint(key.public_key())}",
        "Code: 482 193 775",
    ]
    # hjelp.example.no is not reachable from the tests: the join fails and says so.
    assert "Could not reach the service" in err
    assert (listing(home), listing(temp)) == before


def test_an_unstamped_or_altered_client_refuses_and_leaves_nothing(
    generic_client: Path, end_user: tuple[Path, Path], tmp_path: Path
) -> None:
    home, temp = end_user
    before = (listing(home), listing(temp))
    code, _, err = run_as_end_user(generic_client, home, temp, "482193775")
    assert code == 1 and "carries no server stamp" in err
    altered = tmp_path / "altered"
    data = bytearray(
        stamp(generic_client.read_bytes(), "https://a.example", Ed25519PrivateKey.generate())
    )
    data[-50] ^= 1  # in the stamp's signature (the 64 bytes before the 32-byte trailer)
    altered.write_bytes(bytes(data))
    altered.chmod(0o755)
    code, _, err = run_as_end_user(altered, home, temp, "482193775")
    assert code == 1 and "signature" in err
    assert (listing(home), listing(temp)) == before
