"""Run the fuzz targets: ``python -m tests.fuzz [--seconds N] [--engine E] [TARGET ...]``.

Each target runs for ``--seconds`` (``make fuzz``: ``FUZZ_SECONDS``, default 60) and the
table at the end gives the inputs tried and the rate. The engine is atheris (coverage-
guided libFuzzer, one child process per target, corpus kept in ``.cache/fuzz/corpus``)
where it is installed, else hypothesis. A finding is written to ``.cache/fuzz/findings``
and makes the exit status 1.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from tests.fuzz.seeds import write_seeds

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".cache" / "fuzz"


def _have_atheris() -> bool:
    try:
        import atheris  # noqa: F401
    except ImportError:
        return False
    return True


def _run_atheris(name: str, seconds: int, max_len: int, runs: int | None) -> tuple[int, float, str]:
    corpus = write_seeds(name, CACHE / "corpus")
    findings = CACHE / "findings" / name
    findings.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        "-m",
        "tests.fuzz.atheris_one",
        name,
        str(corpus),
        f"-max_total_time={seconds}",
        f"-max_len={max_len}",
        "-timeout=20",  # seconds per input: more is a hang
        "-rss_limit_mb=1536",  # the whole process: unbounded memory is a finding
        "-print_final_stats=1",
        f"-artifact_prefix={findings}/",
    ]
    if runs:
        command.append(f"-runs={runs}")
    started = time.monotonic()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    elapsed = time.monotonic() - started
    log = done.stdout + done.stderr
    (CACHE / "logs").mkdir(parents=True, exist_ok=True)
    (CACHE / "logs" / f"{name}.log").write_text(log, encoding="utf-8")
    runs = re.search(r"stat::number_of_executed_units:\s*(\d+)", log)
    rate = re.search(r"stat::average_exec_per_sec:\s*(\d+)", log)
    count = int(runs.group(1)) if runs else 0
    speed = float(rate.group(1)) if rate and int(rate.group(1)) else count / max(elapsed, 1e-9)
    status = "ok" if done.returncode == 0 else f"FINDING (see .cache/fuzz/logs/{name}.log)"
    return count, speed, status


def _run_hypothesis(name: str, seconds: int) -> tuple[int, float, str]:
    from tests.fuzz.engine import run_for

    started = time.monotonic()
    try:
        count = run_for(name, seconds)
    except Exception as exc:  # the finding, shrunk by hypothesis
        path = CACHE / "findings" / name / "hypothesis.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"{type(exc).__name__}: {exc}\n", encoding="utf-8")
        return 0, 0.0, f"FINDING: {type(exc).__name__}: {exc}"[:200]
    return count, count / max(time.monotonic() - started, 1e-9), "ok"


def main() -> int:
    from tests.fuzz.targets import TARGETS

    parser = argparse.ArgumentParser(prog="python -m tests.fuzz")
    parser.add_argument("targets", nargs="*", help="names (default: all)")
    parser.add_argument("--seconds", type=int, default=int(os.environ.get("FUZZ_SECONDS", 60)))
    parser.add_argument(
        "--engine",
        choices=("auto", "atheris", "hypothesis"),
        default=os.environ.get("FUZZ_ENGINE", "auto"),
    )
    parser.add_argument(
        "--runs", type=int, default=None, help="atheris: stop a target after this many inputs"
    )
    parser.add_argument("--list", action="store_true")
    args = parser.parse_args()
    if args.list:
        for target in TARGETS.values():
            print(target.name)
        return 0
    names = args.targets or list(TARGETS)
    unknown = [n for n in names if n not in TARGETS]
    if unknown:
        parser.error(f"unknown targets: {', '.join(unknown)}")
    engine = args.engine
    if engine == "auto":
        engine = "atheris" if _have_atheris() else "hypothesis"
    logging.disable(logging.CRITICAL)  # the tunnel logs every refusal it makes
    print(f"fuzzing {len(names)} targets for {args.seconds} s each with {engine}", flush=True)
    failed = 0
    rows = []
    for name in names:
        if engine == "atheris":
            target = TARGETS[name]
            count, speed, status = _run_atheris(name, args.seconds, target.max_len, args.runs)
        else:
            count, speed, status = _run_hypothesis(name, args.seconds)
        failed += status != "ok"
        rows.append((name, count, speed, status))
        print(f"{name:24} {count:>12,} inputs {speed:>10,.0f}/s  {status}", flush=True)
    print(f"\n{'target':24} {'inputs':>12} {'exec/s':>10}  result")
    for name, count, speed, status in rows:
        print(f"{name:24} {count:>12,} {speed:>10,.0f}  {status}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
