"""`make audit`: known vulnerabilities in the locked dependencies.

What is checked is what is installed: requirements/dev.lock (the Makefile installs exactly
it, hash by hash) and package-lock.json (`npm ci`). Sources, each for what it can see:

- the advisory snapshot, security/advisories/snapshot.json: OSV records for exactly the
  packages of the two lock files (and, for npm, the earlier names the packages continue:
  `xterm` for `@xterm/xterm`), taken from public advisory databases and committed as
  data (its `sources`, and docs/SECURITY.md "Dependencies", say from where, as of when,
  and what it cannot see). Read offline, every run; version ranges matched with
  `packaging`. An ecosystem's part older than MAX_SNAPSHOT_AGE_DAYS no longer counts as
  having audited anything, and says so loudly.
- PyPI's JSON API for each project, live: the advisories of the project's newest release,
  which are exactly ours for a package locked at its newest release.
- the npm registry's package documents, live: a locked version its authors deprecated is
  a finding (npm's way of saying "do not use this one"); not an advisory source, so it
  covers nothing.
- pip-audit (OSV) on the lock, and npm audit on package-lock.json, live, where they answer.

A finding from any source fails the run (exit 1) unless security/audit-allow.toml lists it
with a reason; an entry without a reason is refused (exit 2). A package that no fresh
source covered is "not audited" (exit 3), never read as clean; .ci/run warns on 3 unless
FJERNHJELP_AUDIT_REQUIRED=1. Tests run it with --offline: they never reach the network.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import tomllib
import urllib.request
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements" / "dev.lock"
NPM_LOCK = ROOT / "package-lock.json"
SNAPSHOT = ROOT / "security" / "advisories" / "snapshot.json"
ALLOW_FILE = ROOT / "security" / "audit-allow.toml"
MAX_SNAPSHOT_AGE_DAYS = 30

EXIT_FINDINGS = 1
EXIT_REFUSED = 2  # the allow list itself is wrong
EXIT_NOT_AUDITED = 3

ECOSYSTEMS = {"pypi": "PyPI", "npm": "npm"}  # ours (the allow file's) → OSV's spelling


@dataclass(frozen=True, order=True)
class Package:
    ecosystem: str  # "pypi" or "npm"
    name: str  # canonical for PyPI (PEP 503); as written for npm
    version: str

    def __str__(self) -> str:
        return f"{self.ecosystem} {self.name} {self.version}"


@dataclass(frozen=True)
class Finding:
    package: Package
    ids: tuple[str, ...]  # the advisory's id and its aliases (GHSA-…, CVE-…, PYSEC-…)
    summary: str
    source: str

    def line(self) -> str:
        return f"{self.package}: {', '.join(self.ids)} {self.summary[:100]} [{self.source}]"


class AllowListRefused(Exception):
    """An entry of security/audit-allow.toml that lets a finding pass without saying why."""


def _name(ecosystem: str, name: str) -> str:
    return canonicalize_name(name) if ecosystem == "pypi" else name


def read_python_lock(path: Path) -> list[Package]:
    """`name==version` lines of a pip-compile lock (hash and comment lines skipped)."""
    pins = re.findall(r"(?m)^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)", path.read_text())
    return sorted(Package("pypi", _name("pypi", n), v) for n, v in pins)


def read_npm_lock(path: Path) -> list[Package]:
    data = json.loads(path.read_text())
    return sorted(
        Package("npm", key.rsplit("node_modules/", 1)[1], str(entry["version"]))
        for key, entry in data.get("packages", {}).items()
        if "node_modules/" in key and not entry.get("dev")
    )


def load_allowed(path: Path = ALLOW_FILE) -> dict[tuple[str, str, str], str]:
    """(ecosystem, package, id) → reason."""
    data = tomllib.loads(path.read_text()) if path.exists() else {}
    allowed: dict[tuple[str, str, str], str] = {}
    for entry in data.get("allow", []):
        reason = str(entry.get("reason", "")).strip()
        if not reason:
            raise AllowListRefused(f"{path.name}: {entry} has no reason")
        ecosystem = str(entry["ecosystem"]).lower()
        key = (ecosystem, _name(ecosystem, str(entry["package"])), str(entry["id"]))
        allowed[key] = reason
    return allowed


def allowed_reason(finding: Finding, allowed: dict[tuple[str, str, str], str]) -> str | None:
    pkg = finding.package
    for advisory_id in finding.ids:
        reason = allowed.get((pkg.ecosystem, pkg.name, advisory_id))
        if reason:
            return reason
    return None


# --- the snapshot -----------------------------------------------------------------------


@dataclass(frozen=True)
class Snapshot:
    taken: date
    covered: dict[str, frozenset[str]]  # ecosystem → package names records were taken for
    vulns: list[dict[str, Any]]  # OSV records
    # An ecosystem's part assembled on another day than the whole (npm's is by hand).
    taken_for: dict[str, date] = field(default_factory=dict)
    # (ecosystem, name) → the earlier names the package continues: their advisories are
    # its advisories too (a renamed package carries its predecessor's code).
    continues: dict[tuple[str, str], tuple[str, ...]] = field(default_factory=dict)
    sources: list[dict[str, str]] = field(default_factory=list)

    def taken_on(self, ecosystem: str) -> date:
        return self.taken_for.get(ecosystem, self.taken)

    def age_days(self, today: date, ecosystem: str = "pypi") -> int:
        return (today - self.taken_on(ecosystem)).days

    def names(self, package: Package) -> tuple[str, ...]:
        return (package.name, *self.continues.get((package.ecosystem, package.name), ()))


def load_snapshot(path: Path = SNAPSHOT) -> Snapshot:
    data = json.loads(path.read_text())
    covered = {
        eco: frozenset(_name(eco, n) for n in names)
        for eco, names in ((e.lower(), ns) for e, ns in data["covered"].items())
    }
    continues = {
        (eco.lower(), _name(eco.lower(), name)): tuple(_name(eco.lower(), e) for e in earlier)
        for eco, renamed in data.get("continues", {}).items()
        for name, earlier in renamed.items()
    }
    return Snapshot(
        date.fromisoformat(data["taken"]),
        covered,
        list(data["vulns"]),
        {e.lower(): date.fromisoformat(d) for e, d in data.get("taken_for", {}).items()},
        continues,
        [{k: str(v) for k, v in source.items()} for source in data.get("sources", [])],
    )


def _version(text: str) -> Version | None:
    try:
        return Version(text)
    except InvalidVersion:
        return None


def _in_range(version: Version, events: list[dict[str, str]]) -> bool:
    """OSV's ECOSYSTEM/SEMVER range: events sorted by version, introduced opens,
    fixed (exclusive) or last_affected (inclusive) closes."""
    zero = Version("0")
    keyed = []
    for event in events:
        kind, value = next(iter(event.items()))
        at = zero if value == "0" else _version(value)
        if at is not None and kind in ("introduced", "fixed", "last_affected"):
            keyed.append((at, kind))
    keyed.sort(key=lambda item: (item[0], item[1] != "introduced"))
    affected = False
    for at, kind in keyed:
        if kind == "introduced" and version >= at:
            affected = True
        elif (kind == "fixed" and version >= at) or (kind == "last_affected" and version > at):
            affected = False
    return affected


def affects(record: dict[str, Any], package: Package, names: Iterable[str] = ()) -> bool:
    """Whether `record` names the package (or one of `names`, the earlier names it
    continues) at a range or listed version holding its version."""
    version = _version(package.version)
    wanted = {package.name, *names}
    for entry in record.get("affected", []):
        target = entry.get("package", {})
        if str(target.get("ecosystem", "")).lower() != package.ecosystem:
            continue
        if _name(package.ecosystem, str(target.get("name", ""))) not in wanted:
            continue
        listed = entry.get("versions", [])
        if package.version in listed or (
            version is not None and any(_version(v) == version for v in listed)
        ):
            return True
        for span in entry.get("ranges", []):
            kind = span.get("type")
            if (
                kind in ("ECOSYSTEM", "SEMVER")
                and version is not None
                and _in_range(version, span.get("events", []))
            ):
                return True
    return False


def check_snapshot(packages: Iterable[Package], snapshot: Snapshot) -> list[Finding]:
    findings = []
    for package in packages:
        for record in snapshot.vulns:
            if not record.get("withdrawn") and affects(record, package, snapshot.names(package)):
                ids = (str(record["id"]), *map(str, record.get("aliases", [])))
                findings.append(Finding(package, ids, str(record.get("summary", "")), "snapshot"))
    return findings


# --- live sources -----------------------------------------------------------------------


@dataclass
class Live:
    findings: list[Finding] = field(default_factory=list)
    covered: set[Package] = field(default_factory=set)
    notes: list[str] = field(default_factory=list)


def _http_json(url: str) -> Any:
    request = urllib.request.Request(url, headers={"Accept": "application/json"})  # noqa: S310
    with urllib.request.urlopen(request, timeout=15) as response:  # noqa: S310 (https, fixed host)
        return json.load(response)


def pypi_live(packages: list[Package], fetch: Callable[[str], Any] = _http_json) -> Live:
    """PyPI's project JSON lists the advisories of the project's newest release: exactly
    ours where the lock holds that release; for an older pin it says nothing."""
    live = Live()

    def one(package: Package) -> tuple[Package, Any]:
        try:
            return package, fetch(f"https://pypi.org/pypi/{package.name}/json")
        except Exception as exc:
            return package, exc

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(one, packages))
    answered = older = 0
    for package, data in answers:
        if isinstance(data, BaseException) or not isinstance(data, dict):
            continue
        answered += 1
        newest = _version(str(data.get("info", {}).get("version", "")))
        if newest is None or newest != _version(package.version):
            older += 1
            continue
        live.covered.add(package)
        for vuln in data.get("vulnerabilities") or []:
            ids = (str(vuln["id"]), *map(str, vuln.get("aliases") or []))
            summary = str(vuln.get("summary") or vuln.get("details") or "")
            live.findings.append(Finding(package, ids, summary, "PyPI JSON API"))
    live.notes.append(
        f"PyPI JSON API: answered for {answered} of {len(packages)} packages; "
        f"{len(live.covered)} are locked at their newest release (their advisories checked "
        f"live), {older} have a newer release (for those the snapshot alone speaks)"
    )
    return live


def npm_registry_live(packages: list[Package], fetch: Callable[[str], Any] = _http_json) -> Live:
    """The registry's document of each package: a locked version its authors deprecated
    is a finding (id "deprecated"); whether a newer release exists is a note. Not an
    advisory source (npm's advisories are not in it), so it covers nothing."""
    live = Live()
    answered, newer, deprecated = 0, [], []
    for package in packages:
        try:  # a scoped name's "/" is escaped, as npm itself asks for it
            data = fetch(f"https://registry.npmjs.org/{package.name.replace('/', '%2f')}")
        except Exception:  # noqa: S112 (an unanswered package is said below, by the count)
            continue
        if not isinstance(data, dict):
            continue
        answered += 1
        latest = str(data.get("dist-tags", {}).get("latest", ""))
        if latest and latest != package.version:
            newer.append(f"{package.name} {latest}")
        message = data.get("versions", {}).get(package.version, {}).get("deprecated")
        if message:
            deprecated.append(package.name)
            summary = f"deprecated by its authors: {message}"
            live.findings.append(Finding(package, ("deprecated",), summary, "npm registry"))
    live.notes.append(
        f"npm registry: answered for {answered} of {len(packages)} packages; "
        f"deprecated: {', '.join(deprecated) or 'none'}; "
        f"newer releases: {', '.join(newer) or 'none (each is locked at its newest)'}"
    )
    return live


def pip_audit_live(lock: Path, packages: list[Package]) -> Live:
    """pip-audit against OSV: all of the lock, at any version, where OSV answers."""
    live = Live()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "pip-audit.json"
        done = subprocess.run(  # noqa: S603 (fixed arguments)
            [sys.executable, "-m", "pip_audit", "-r", str(lock), "--disable-pip", "--no-deps",
             "-s", "osv", "--progress-spinner", "off", "-f", "json", "-o", str(out)],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if not out.exists():
            tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
            live.notes.append(f"pip-audit (OSV): no answer: {tail[:160]}")
            return live
        report = json.loads(out.read_text())
    by_name = {p.name: p for p in packages}
    for dep in report.get("dependencies", []):
        package = by_name.get(_name("pypi", dep["name"]))
        if package is None or dep.get("skip_reason"):
            continue
        live.covered.add(package)
        for vuln in dep.get("vulns", []):
            ids = (vuln["id"], *vuln.get("aliases", []))
            live.findings.append(Finding(package, ids, vuln.get("description", ""), "pip-audit"))
    live.notes.append(f"pip-audit (OSV): checked {len(live.covered)} of {len(packages)}")
    return live


def read_npm_audit(report: dict[str, Any], packages: list[Package]) -> Live:
    live = Live()
    if "error" in report or "vulnerabilities" not in report:
        why = report.get("message") or report.get("error", {}).get("summary") or "no report"
        live.notes.append(f"npm audit: no answer: {str(why)[:160]}")
        return live
    live.covered.update(packages)
    by_name = {p.name: p for p in packages}
    for name, entry in report["vulnerabilities"].items():
        for via in entry.get("via", []):
            if not isinstance(via, dict):
                continue  # vulnerable through another package: that one is listed
            url = str(via.get("url", ""))
            ids = tuple(i for i in (url.rsplit("/", 1)[-1], str(via.get("source", ""))) if i)
            package = by_name.get(name, Package("npm", name, str(via.get("range", "?"))))
            live.findings.append(Finding(package, ids, str(via.get("title", "")), "npm audit"))
    live.notes.append(f"npm audit: checked {len(packages)} packages")
    return live


def npm_audit_live(npm_lock: Path, packages: list[Package]) -> Live:
    command = ["npm", "audit", "--package-lock-only", "--omit=dev", "--json"]
    try:
        done = subprocess.run(  # noqa: S603 (npm from PATH, as `make npm-deps` runs it)
            command, cwd=npm_lock.parent, capture_output=True, text=True, check=False
        )
        report = json.loads(done.stdout)
    except (OSError, json.JSONDecodeError) as exc:
        report = {"error": {"summary": str(exc)}}
    return read_npm_audit(report, packages)


# --- the verdict ------------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    findings: list[str]  # known vulnerabilities nobody accepted: the run fails
    accepted: list[str]  # listed in the allow file, with its reason
    unaudited: list[str]  # packages no fresh source covered: the run proves nothing of them
    notes: list[str]

    @property
    def exit_code(self) -> int:
        if self.findings:
            return EXIT_FINDINGS
        return EXIT_NOT_AUDITED if self.unaudited else 0


def _dedupe(findings: list[Finding]) -> list[Finding]:
    """One finding per package and advisory, whichever sources reported it."""
    kept: list[Finding] = []
    seen: dict[Package, list[set[str]]] = {}
    for finding in findings:
        known = seen.setdefault(finding.package, [])
        if any(ids & set(finding.ids) for ids in known):
            continue
        known.append(set(finding.ids))
        kept.append(finding)
    return kept


def judge(
    packages: list[Package],
    snapshot: Snapshot,
    live: list[Live],
    allowed: dict[tuple[str, str, str], str],
    today: date,
) -> Verdict:
    notes = [note for source in live for note in source.notes]
    stale = sorted(
        eco
        for eco in {p.ecosystem for p in packages}
        if snapshot.age_days(today, eco) > MAX_SNAPSHOT_AGE_DAYS
    )
    for eco in reversed(stale):
        notes.insert(
            0,
            f"SNAPSHOT STALE: security/advisories/snapshot.json's {ECOSYSTEMS[eco]} part was "
            f"taken {snapshot.taken_on(eco)}, {snapshot.age_days(today, eco)} days ago (more "
            f"than {MAX_SNAPSHOT_AGE_DAYS}): it still fails the run on what it knows, but "
            'audits nothing alone; refresh it (docs/SECURITY.md, "Dependencies")',
        )
    findings = check_snapshot(packages, snapshot)
    for source in live:
        findings += source.findings
    covered_live: set[Package] = set().union(*(source.covered for source in live))
    unaudited = []
    for package in packages:
        in_snapshot = package.name in snapshot.covered.get(package.ecosystem, frozenset())
        if package in covered_live or (package.ecosystem not in stale and in_snapshot):
            continue
        if in_snapshot:
            why = "the snapshot is stale and no live source answered"
        else:
            why = "not in the advisory snapshot and no live source answered"
        unaudited.append(f"{package}: {why}")
    finding_lines, accepted = [], []
    for finding in _dedupe(findings):
        reason = allowed_reason(finding, allowed)
        if reason:
            accepted.append(f"{finding.line()} (allowed: {reason})")
        else:
            finding_lines.append(f"not in security/audit-allow.toml: {finding.line()}")
    return Verdict(finding_lines, accepted, unaudited, notes)


def describe_snapshot(snapshot: Snapshot, packages: list[Package]) -> list[str]:
    """What the snapshot checked, per ecosystem: from which sources, as of when (the
    report must say it, since a clean result is only as good as its sources' dates)."""
    lines = []
    for eco in sorted({p.ecosystem for p in packages}):
        count = sum(p.ecosystem == eco for p in packages)
        sources = [s for s in snapshot.sources if s.get("ecosystem", "").lower() == eco]
        said = "; ".join(f"{s['name']}, data as of {s.get('data_as_of', '?')}" for s in sources)
        renamed = [
            f"{n} (as {', '.join(e)})" for (ec, n), e in snapshot.continues.items() if ec == eco
        ]
        lines.append(
            f"snapshot, {ECOSYSTEMS[eco]}: {count} packages checked against the part taken "
            f"{snapshot.taken_on(eco)} from: {said or 'no source'}"
            + (f"; earlier names checked too: {', '.join(renamed)}" if renamed else "")
        )
    return lines


def main(argv: list[str] | None = None, today: date | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/audit.py")
    parser.add_argument("--lock", type=Path, default=LOCK)
    parser.add_argument("--npm-lock", type=Path, default=NPM_LOCK)
    parser.add_argument("--snapshot", type=Path, default=SNAPSHOT)
    parser.add_argument("--allow", type=Path, default=ALLOW_FILE)
    parser.add_argument("--offline", action="store_true", help="the snapshot only")
    args = parser.parse_args(argv)
    today = today or datetime.now(UTC).date()
    try:
        allowed = load_allowed(args.allow)
    except AllowListRefused as exc:
        print(f"AUDIT REFUSED: {exc}: every accepted finding needs its reason")
        return EXIT_REFUSED
    python, npm = read_python_lock(args.lock), read_npm_lock(args.npm_lock)
    snapshot = load_snapshot(args.snapshot)
    live: list[Live] = []
    if not args.offline:
        live = [pypi_live(python), pip_audit_live(args.lock, python)]
        live += [npm_registry_live(npm), npm_audit_live(args.npm_lock, npm)]
    verdict = judge(python + npm, snapshot, live, allowed, today)
    print(
        f"audit: {len(python)} Python packages ({args.lock.name}), {len(npm)} npm packages "
        f"({args.npm_lock.name}); advisory snapshot of {snapshot.taken} "
        f"({len(snapshot.vulns)} records){'; offline' if args.offline else ''}"
    )
    for line in describe_snapshot(snapshot, python + npm):
        print(line)
    for note in verdict.notes:
        print(("#### " if note.startswith("SNAPSHOT STALE") else "") + note)
    for line in verdict.accepted:
        print(f"accepted: {line}")
    for line in verdict.findings:
        print(f"AUDIT FAILED: {line}")
    for line in verdict.unaudited:
        print(f"NOT AUDITED: {line}")
    if verdict.exit_code == 0:
        print("audit: no known vulnerabilities outside security/audit-allow.toml")
    return verdict.exit_code


if __name__ == "__main__":
    raise SystemExit(main())
