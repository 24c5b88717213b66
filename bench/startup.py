"""How long `fjernhjelp --help` takes to start, against a bare `python -c "import typer"`.

Both run as fresh processes from this virtual environment, interleaved (baseline, ours,
baseline, ours, ...) so a burst of load on the shared machine hits both alike. For each
the wall time and the CPU time (user + system, of the child alone) are taken; the ratio
of the medians is the figure (issue 9: at most 1.5). Commands that need the server
(`serve`, `demo`, `admin`, `db`, `audit`) import it when they run, not at start-up.

Run: .venv/bin/python bench/startup.py [--rounds 15] [--command "agent --help"]
"""

from __future__ import annotations

import argparse
import os
import resource
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path


def _fjernhjelp() -> list[str]:
    script = Path(sys.executable).with_name("fjernhjelp")
    # The console script is what people run; `-m fjernhjelp` if it is not installed.
    return [str(script)] if script.exists() else [sys.executable, "-m", "fjernhjelp"]


def measure(argv: list[str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one run of ``argv``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, env=os.environ.copy())
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--command", default="--help", help="fjernhjelp arguments to time")
    args = parser.parse_args()
    baseline_argv = [sys.executable, "-c", "import typer"]
    ours_argv = [*_fjernhjelp(), *shlex.split(args.command)]
    # One untimed run of each: the first start reads files the later ones find cached.
    measure(baseline_argv)
    measure(ours_argv)
    base_wall, base_cpu, our_wall, our_cpu = [], [], [], []
    for _ in range(args.rounds):
        wall, cpu = measure(baseline_argv)
        base_wall.append(wall)
        base_cpu.append(cpu)
        wall, cpu = measure(ours_argv)
        our_wall.append(wall)
        our_cpu.append(cpu)
    med = statistics.median
    print(f"rounds: {args.rounds}, medians")
    print(f"  python -c 'import typer':  wall {med(base_wall):.3f} s, CPU {med(base_cpu):.3f} s")
    print(f"  fjernhjelp {args.command}:  wall {med(our_wall):.3f} s, CPU {med(our_cpu):.3f} s")
    print(f"ratio (wall): {med(our_wall) / med(base_wall):.2f}")
    print(f"ratio (CPU):  {med(our_cpu) / med(base_cpu):.2f}")


if __name__ == "__main__":
    main()
