"""`make audit`: known vulnerabilities in the Python packages the virtual environment
holds and in the browser libraries package-lock.json pins.

There is no Python lock file: the project installs from pyproject.toml's ranges, so
pip-audit looks at what .venv actually holds (the server's dependencies, the desktop
extra and the dev tools: more than production ships, never less). npm audit reads
package-lock.json.

A finding fails the run (exit 1) unless security/audit-allow.toml lists it with a reason.
A package the vulnerability service could not look up is never read as clean: pip-audit
itself reports such a package as skipped and exits 0, which would read as "no known
vulnerabilities" when nothing was checked. Such a run exits 3 ("not audited") and says so
loudly. .ci/run fails on 1 and, on a network without the vulnerability services (this
project's CI machines reach PyPI's package index but not its vulnerability data, OSV or
npm's advisory endpoint), only warns on 3 unless FJERNHJELP_AUDIT_REQUIRED=1.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
ALLOW_FILE = ROOT / "security" / "audit-allow.toml"
OWN_DISTRIBUTION = "fjernhjelp"  # installed editable from this checkout: nothing to look up


@dataclass(frozen=True)
class Finding:
    ecosystem: str  # "pypi" or "npm"
    package: str
    version: str
    ids: tuple[str, ...]  # the advisory's id and its aliases (GHSA-…, CVE-…, PYSEC-…)
    summary: str

    def line(self) -> str:
        return (
            f"{self.ecosystem} {self.package} {self.version}: {', '.join(self.ids)} {self.summary}"
        )


def load_allowed(path: Path = ALLOW_FILE) -> dict[tuple[str, str, str], str]:
    """(ecosystem, package, id) → reason. An entry without a reason is itself an error."""
    data = tomllib.loads(path.read_text()) if path.exists() else {}
    allowed: dict[tuple[str, str, str], str] = {}
    for entry in data.get("allow", []):
        reason = str(entry.get("reason", "")).strip()
        if not reason:
            raise SystemExit(f"{path}: {entry} has no reason")
        key = (str(entry["ecosystem"]), str(entry["package"]).lower(), str(entry["id"]))
        allowed[key] = reason
    return allowed


def is_allowed(finding: Finding, allowed: dict[tuple[str, str, str], str]) -> bool:
    return any((finding.ecosystem, finding.package.lower(), i) in allowed for i in finding.ids)


def read_pip_audit(report: dict[str, Any]) -> tuple[list[Finding], list[str]]:
    """Findings and the packages that were not checked (with pip-audit's reason)."""
    findings, unchecked = [], []
    for dep in report.get("dependencies", []):
        name, version = dep["name"], dep.get("version", "?")
        if dep.get("skip_reason"):
            if name.lower() != OWN_DISTRIBUTION:
                unchecked.append(f"{name}: {dep['skip_reason']}")
            continue
        for vuln in dep.get("vulns", []):
            ids = (vuln["id"], *vuln.get("aliases", []))
            findings.append(Finding("pypi", name, version, ids, vuln.get("description", "")[:100]))
    return findings, unchecked


def read_npm_audit(report: dict[str, Any]) -> tuple[list[Finding], list[str]]:
    """Findings, or why npm could not audit at all (npm prints its error as JSON too)."""
    if "error" in report or "vulnerabilities" not in report:
        why = report.get("message") or report.get("error", {}).get("summary") or "no report"
        return [], [f"npm audit gave no report: {why}"]
    findings = []
    for name, entry in report["vulnerabilities"].items():
        for via in entry.get("via", []):
            if not isinstance(via, dict):
                continue  # a package that is vulnerable through another: that one is listed
            url = str(via.get("url", ""))
            ids = tuple(i for i in (url.rsplit("/", 1)[-1], str(via.get("source", ""))) if i)
            findings.append(
                Finding("npm", name, str(via.get("range", "?")), ids, str(via.get("title", "")))
            )
    return findings, []


def run_pip_audit() -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "pip-audit.json"
        # pip-audit exits 1 when it finds something; the report says what, so the exit
        # status is not what decides here. Anything else (no network) leaves no report.
        done = subprocess.run(  # noqa: S603 (fixed arguments, no input from outside)
            [sys.executable, "-m", "pip_audit", "--skip-editable", "--progress-spinner", "off",
             "-f", "json", "-o", str(out)],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if not out.exists():
            tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
            return {"dependencies": [], "error": tail}
        return json.loads(out.read_text())


def run_npm_audit() -> dict[str, Any]:
    # npm from PATH, as `make npm-deps` runs it.
    command = ["npm", "audit", "--package-lock-only", "--omit=dev", "--json"]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)  # noqa: S603
    try:
        return json.loads(done.stdout)
    except json.JSONDecodeError:
        return {"error": {"summary": (done.stderr.strip().splitlines() or ["no output"])[-1]}}


EXIT_FINDINGS = 1
EXIT_NOT_AUDITED = 3


@dataclass(frozen=True)
class Verdict:
    findings: list[str]  # known vulnerabilities nobody has accepted: the run fails
    unchecked: list[str]  # what could not be looked up: the run proves nothing

    @property
    def problems(self) -> list[str]:
        return self.findings + self.unchecked

    @property
    def exit_code(self) -> int:
        if self.findings:
            return EXIT_FINDINGS
        return EXIT_NOT_AUDITED if self.unchecked else 0


def judge(
    python: dict[str, Any], npm: dict[str, Any], allowed: dict[tuple[str, str, str], str]
) -> Verdict:
    """Every reason the run fails, one line each: findings and what went unchecked."""
    unchecked_lines: list[str] = []
    if "error" in python:
        unchecked_lines.append(f"pip-audit could not run: {python['error']}")
    findings, unchecked = read_pip_audit(python)
    total = sum(d["name"].lower() != OWN_DISTRIBUTION for d in python.get("dependencies", []))
    if unchecked:
        unchecked_lines.append(
            f"pip-audit could not check {len(unchecked)} of {total} packages"
            f" (the vulnerability service had no answer for them), e.g. {unchecked[0]}"
        )
    npm_findings, npm_problems = read_npm_audit(npm)
    unchecked_lines += npm_problems
    finding_lines = [
        f"not in {ALLOW_FILE.relative_to(ROOT)}: {finding.line()}"
        for finding in findings + npm_findings
        if not is_allowed(finding, allowed)
    ]
    return Verdict(finding_lines, unchecked_lines)


def main() -> int:
    allowed = load_allowed()
    python, npm = run_pip_audit(), run_npm_audit()
    verdict = judge(python, npm, allowed)
    audited = len(python.get("dependencies", []))
    print(f"pip-audit: {audited} Python packages in .venv; npm audit: package-lock.json")
    for problem in verdict.findings:
        print(f"AUDIT FAILED: {problem}")
    for problem in verdict.unchecked:
        print(f"NOT AUDITED: {problem}")
    if verdict.exit_code == 0:
        print("audit: no known vulnerabilities outside security/audit-allow.toml")
    return verdict.exit_code


if __name__ == "__main__":
    raise SystemExit(main())
