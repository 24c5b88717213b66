"""Size and start-up of the one-file Support client, as ratios to ``python -c pass``.

Run after ``make support-client``: ``.venv/bin/python bench/support_client.py``. Each
command runs 5 times in a fresh HOME and TMPDIR; the median wall time is printed with its
ratio to an empty Python start in the same run.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fjernhjelp.support.stamp import stamp

ROUNDS = 5


def median_run(command: list[str]) -> float:
    times = []
    for _ in range(ROUNDS):
        with tempfile.TemporaryDirectory() as scratch:
            env = {"HOME": scratch, "TMPDIR": scratch, "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
            start = time.perf_counter()
            subprocess.run(command, env=env, capture_output=True, check=False)
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    generic = Path("dist/fjernhjelp-support-linux-x86_64")
    if not generic.exists():
        sys.exit("build it first: make support-client")
    with tempfile.TemporaryDirectory() as folder:
        client = Path(folder) / "client"
        client.write_bytes(
            stamp(generic.read_bytes(), "https://h.example", Ed25519PrivateKey.generate())
        )
        client.chmod(0o755)
        base = median_run([sys.executable, "-c", "pass"])
        rows = [
            ("python -c pass", base),
            ("one-file client (stamped)", median_run([str(client), "482193775"])),
            (
                "fjernhjelp support (package)",
                median_run(
                    [
                        str(Path(sys.executable).with_name("fjernhjelp")),
                        "support",
                        "482193775",
                        "--server",
                        "https://h.example",
                    ]
                ),
            ),
        ]
    print(f"size: {generic.stat().st_size / 1e6:.1f} MB")
    for name, seconds in rows:
        print(f"{name:32} {seconds * 1000:8.0f} ms  {seconds / base:6.1f}x")


if __name__ == "__main__":
    main()
