"""The lines of requirements/dev.lock that the program needs at run time, for the .deb
files (scripts/deb.sh): the dependencies of pyproject.toml's [project] and of the extras
asked for, and everything they pull in, each line copied as it stands in the lock (the
version and every sha256). So what a package ships is a subset of what `make audit`
checked and the tests ran with, installed with `pip --require-hashes`; no second
resolution, no second lock to keep in step.

What pulls in what is read from pip-compile's `# via` notes: a locked package is needed
when one of the packages it is there for is needed. The notes do not say through which
extra of a package a dependency came, so a dependency of an extra only the dev tools ask
for can ride along (still locked, hashed and audited); deb.sh's `pip check` catches the
opposite, a dependency the subset lacks.
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements" / "dev.lock"
PYPROJECT = ROOT / "pyproject.toml"
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==")


@dataclass
class Locked:
    name: str
    lines: list[str]  # the pin and its hash lines, as written
    via: set[str]  # the packages it is there for (canonical names; the project itself omitted)


def read_lock(path: Path) -> dict[str, Locked]:
    locked: dict[str, Locked] = {}
    current: Locked | None = None
    for line in path.read_text().splitlines():
        pin = _PIN.match(line)
        if pin:
            current = Locked(canonicalize_name(pin.group(1)), [line], set())
            locked[current.name] = current
        elif current and line.lstrip().startswith("--hash"):
            current.lines.append(line)
        elif current and line.lstrip().startswith("#"):
            text = line.lstrip()[1:].strip()
            text = text.removeprefix("via").strip()
            # "fjernhjelp (pyproject.toml)" and "-r file" are roots, not packages.
            if text and "(" not in text and not text.startswith("-"):
                current.via.add(canonicalize_name(text))
        elif not line.strip():
            current = None
    return locked


def roots(pyproject: Path, extras: list[str]) -> set[str]:
    project = tomllib.loads(pyproject.read_text())["project"]
    wanted = list(project["dependencies"])
    for extra in extras:
        wanted += project["optional-dependencies"][extra]
    requirements = [Requirement(line) for line in wanted]
    return {canonicalize_name(r.name) for r in requirements if not r.marker or r.marker.evaluate()}


def subset(locked: dict[str, Locked], needed_first: set[str]) -> list[Locked]:
    missing = needed_first - set(locked)
    if missing:
        raise SystemExit(f"not in the lock (make lock): {sorted(missing)}")
    needed = set(needed_first)
    grew = True
    while grew:
        more = {name for name, entry in locked.items() if name not in needed and entry.via & needed}
        needed |= more
        grew = bool(more)
    return [locked[name] for name in sorted(needed)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/lock_subset.py")
    parser.add_argument("--lock", type=Path, default=LOCK)
    parser.add_argument("--pyproject", type=Path, default=PYPROJECT)
    parser.add_argument("--extra", action="append", default=[], help="an extra, e.g. desktop")
    args = parser.parse_args(argv)
    chosen = subset(read_lock(args.lock), roots(args.pyproject, args.extra))
    extras = f"[{','.join(args.extra)}]" if args.extra else ""
    print(f"# fjernhjelp{extras}'s run-time part of {args.lock.name} (scripts/lock_subset.py)")
    for entry in chosen:
        print("\n".join(entry.lines))
    print(f"{len(chosen)} packages", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
