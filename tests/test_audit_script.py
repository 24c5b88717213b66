"""`make audit` (scripts/audit.py) fails on a finding nobody has accepted, and on a run
that checked nothing: pip-audit reports packages its service could not look up as
skipped and still says "No known vulnerabilities found"."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("audit_script", ROOT / "scripts" / "audit.py")
assert _spec and _spec.loader
audit = importlib.util.module_from_spec(_spec)
sys.modules["audit_script"] = audit  # dataclasses look their module up there
_spec.loader.exec_module(audit)

CLEAN_NPM = {"vulnerabilities": {}, "metadata": {}}
JINJA_VULN = {
    "id": "GHSA-h75v-3vvj-5mfj",
    "aliases": ["CVE-2024-56326"],
    "description": "sandbox breakout through format",
}


def _pip(*deps: dict) -> dict:
    return {"dependencies": [{"name": "fjernhjelp", "skip_reason": "editable"}, *deps]}


def test_a_clean_run_passes() -> None:
    report = _pip({"name": "jinja2", "version": "3.1.6", "vulns": []})
    assert audit.judge(report, CLEAN_NPM, {}).problems == []


def test_packages_nobody_could_check_fail_the_run() -> None:
    report = _pip(
        {"name": "jinja2", "skip_reason": "Dependency not found on PyPI and could not be audited"},
        {"name": "sqlalchemy", "version": "2.1.9", "vulns": []},
    )
    verdict = audit.judge(report, CLEAN_NPM, {})
    assert verdict.findings == []
    assert len(verdict.unchecked) == 1 and "could not check 1 of 2 packages" in verdict.unchecked[0]
    assert verdict.exit_code == audit.EXIT_NOT_AUDITED  # never read as clean


def test_pip_audit_that_could_not_run_fails() -> None:
    verdict = audit.judge({"dependencies": [], "error": "ConnectionError"}, CLEAN_NPM, {})
    assert verdict.unchecked == ["pip-audit could not run: ConnectionError"]
    assert verdict.exit_code == audit.EXIT_NOT_AUDITED


def test_a_finding_fails_until_it_is_listed_with_its_reason_by_any_of_its_ids() -> None:
    report = _pip({"name": "Jinja2", "version": "3.1.4", "vulns": [JINJA_VULN]})
    verdict = audit.judge(report, CLEAN_NPM, {})
    assert len(verdict.findings) == 1 and "GHSA-h75v-3vvj-5mfj" in verdict.findings[0]
    assert verdict.exit_code == audit.EXIT_FINDINGS
    allowed = {("pypi", "jinja2", "CVE-2024-56326"): "templates are ours, never users'"}
    assert audit.judge(report, CLEAN_NPM, allowed).problems == []
    elsewhere = {("pypi", "markupsafe", "CVE-2024-56326"): "a different package"}
    assert audit.judge(report, CLEAN_NPM, elsewhere).problems != []


def test_npm_findings_and_npm_failures() -> None:
    vulnerable = {
        "vulnerabilities": {
            "@novnc/novnc": {
                "via": [
                    {
                        "source": 1099999,
                        "title": "made-up advisory",
                        "url": "https://github.com/advisories/GHSA-aaaa-bbbb-cccc",
                        "range": "<1.7.1",
                    }
                ]
            },
            "some-parent": {"via": ["@novnc/novnc"]},
        }
    }
    report = _pip()
    verdict = audit.judge(report, vulnerable, {})
    assert len(verdict.findings) == 1 and "@novnc/novnc" in verdict.findings[0]
    allowed = {("npm", "@novnc/novnc", "GHSA-aaaa-bbbb-cccc"): "the decoder is not used"}
    assert audit.judge(report, vulnerable, allowed).problems == []
    refused = {"message": "405 Method Not Allowed - POST https://registry.npmjs.org/-/npm/v1/…"}
    assert audit.judge(report, refused, {}).unchecked == [
        "npm audit gave no report: 405 Method Not Allowed - POST https://registry.npmjs.org/-/npm/v1/…"
    ]


def test_the_allow_file_loads_and_every_entry_has_a_reason(tmp_path: Path) -> None:
    audit.load_allowed()  # the real file
    bad = tmp_path / "allow.toml"
    bad.write_text('[[allow]]\necosystem = "npm"\npackage = "x"\nid = "GHSA-1"\nreason = " "\n')
    try:
        audit.load_allowed(bad)
    except SystemExit as exc:
        assert "has no reason" in str(exc)
    else:
        raise AssertionError("an entry without a reason was accepted")
