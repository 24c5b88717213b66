"""`make audit` (scripts/audit.py) against real advisory data, offline: a real advisory for
a real old release fails the run, Python's and npm's (through a package's earlier name
too), an allow entry with a reason lets it pass, one without a reason is refused, a stale
snapshot says so, and a package nobody could check is never read as clean. The committed
locks are checked against the committed snapshot too."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from datetime import timedelta
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("audit_script", ROOT / "scripts" / "audit.py")
assert _spec and _spec.loader
audit = importlib.util.module_from_spec(_spec)
sys.modules["audit_script"] = audit  # dataclasses look their module up there
_spec.loader.exec_module(audit)

DATA = ROOT / "tests" / "data" / "audit"
OLD_LOCK = DATA / "old.lock"  # jinja2 2.7.1
CURRENT_LOCK = DATA / "current.lock"  # jinja2 3.1.6
NO_NPM = DATA / "package-lock.json"
# Jinja2 before 2.7.2: FileSystemBytecodeCache's temporary files in /tmp (PyPA database).
OLD_JINJA = {"PYSEC-2014-8", "CVE-2014-1402", "GHSA-8r7q-cvjq-x353"}


# xterm 3.8.0: remote code execution through special characters (GitHub advisory database).
OLD_XTERM = {"GHSA-mc23-976p-j42x", "CVE-2019-0542"}


def _run(
    tmp_path: Path, lock: Path, allow: str = "", days_later: int = 0, npm_lock: Path = NO_NPM
) -> int:
    allow_file = tmp_path / "allow.toml"
    allow_file.write_text(allow)
    today = audit.load_snapshot().taken + timedelta(days=days_later)
    argv = ["--offline", "--lock", str(lock), "--npm-lock", str(npm_lock)]
    return audit.main([*argv, "--allow", str(allow_file)], today=today)  # type: ignore[no-any-return]


def _npm_lock(tmp_path: Path, **versions: str) -> Path:
    """A package-lock.json (lockfile v3) holding `versions` (name → version)."""
    path = tmp_path / "package-lock.json"
    packages: dict[str, object] = {"": {"name": "fixture"}}
    packages |= {f"node_modules/{n}": {"version": v} for n, v in versions.items()}
    path.write_text(json.dumps({"name": "fixture", "lockfileVersion": 3, "packages": packages}))
    return path


def test_a_real_advisory_fails_until_each_is_accepted_with_its_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run(tmp_path, OLD_LOCK) == audit.EXIT_FINDINGS
    out = capsys.readouterr().out
    failed = [line for line in out.splitlines() if line.startswith("AUDIT FAILED")]
    assert any(all(i in line for i in OLD_JINJA) for line in failed), out
    assert all("pypi jinja2 2.7.1" in line for line in failed)  # markupsafe 3.0.4: clean

    # Every advisory listed with a reason, one by an alias (CVE) instead of its own id.
    ids = [line.split("2.7.1: ", 1)[1].split(",")[0] for line in failed]
    entries = [
        f'[[allow]]\necosystem = "pypi"\npackage = "Jinja2"\nid = "{i}"\n'
        f'reason = "a test: {i} is accepted"\n'
        for i in ids
        if i != "PYSEC-2014-8"
    ]
    entries.append(
        '[[allow]]\necosystem = "pypi"\npackage = "jinja2"\nid = "CVE-2014-1402"\n'
        'reason = "the bytecode cache is never used"\n'
    )
    assert _run(tmp_path, OLD_LOCK, "\n".join(entries)) == 0
    out = capsys.readouterr().out
    assert "AUDIT FAILED" not in out and "NOT AUDITED" not in out
    assert "(allowed: the bytecode cache is never used)" in out

    # Accepted for another package: still a finding.
    other = "\n".join(entries).replace('package = "jinja2"', 'package = "markupsafe"')
    assert _run(tmp_path, OLD_LOCK, other) == audit.EXIT_FINDINGS


def test_an_allow_entry_without_a_reason_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    entry = '[[allow]]\necosystem = "pypi"\npackage = "jinja2"\nid = "PYSEC-2014-8"\n'
    for reason in ("", 'reason = "  "\n'):
        assert _run(tmp_path, OLD_LOCK, entry + reason) == audit.EXIT_REFUSED
        assert "AUDIT REFUSED" in capsys.readouterr().out
    audit.load_allowed()  # the real file loads


def test_an_npm_advisory_fails_until_accepted_with_a_reason_also_under_an_earlier_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old = _npm_lock(tmp_path, xterm="3.8.0")
    assert _run(tmp_path, CURRENT_LOCK, npm_lock=old) == audit.EXIT_FINDINGS
    out = capsys.readouterr().out
    [failed] = [line for line in out.splitlines() if line.startswith("AUDIT FAILED")]
    assert "npm xterm 3.8.0" in failed and all(i in failed for i in OLD_XTERM), out
    assert "NOT AUDITED" not in out  # the snapshot took records for the old name too
    # The report says what npm was checked against, and as of when.
    assert "snapshot, npm: 1 packages checked against the part taken" in out
    assert "GitHub advisory database" in out and "data as of 2024-10" in out

    reason = 'reason = "a test: the terminal never sees untrusted text"\n'
    entry = '[[allow]]\necosystem = "npm"\npackage = "xterm"\nid = "CVE-2019-0542"\n'
    assert _run(tmp_path, CURRENT_LOCK, entry + reason, npm_lock=old) == 0
    assert "(allowed: a test: the terminal never sees untrusted text)" in capsys.readouterr().out
    assert _run(tmp_path, CURRENT_LOCK, entry, npm_lock=old) == audit.EXIT_REFUSED
    assert "AUDIT REFUSED" in capsys.readouterr().out

    # The scoped package continues the old one: the old name's advisory is its advisory;
    # a release past the fix is clean; so is noVNC past its XSS (GHSA-49rv-g7w5-m8xx).
    def failed(**versions: str) -> set[str]:
        assert _run(tmp_path, CURRENT_LOCK, npm_lock=_npm_lock(tmp_path, **versions)) == 1
        out = capsys.readouterr().out.splitlines()
        found = (re.search(r"toml: npm (\S+ \S+: GHSA-[\w-]+)", line) for line in out)
        return {match.group(1) for match in found if match}

    # (GHSA-h62m-39wp-xq3w, the paste advisory, stands against every @xterm/xterm to 6.0.0.)
    assert failed(**{"@xterm/xterm": "3.9.1", "@novnc/novnc": "0.6.1"}) == {
        "@xterm/xterm 3.9.1: GHSA-mc23-976p-j42x",
        "@xterm/xterm 3.9.1: GHSA-h62m-39wp-xq3w",
        "@novnc/novnc 0.6.1: GHSA-49rv-g7w5-m8xx",
    }
    assert failed(**{"@xterm/xterm": "3.9.2", "@novnc/novnc": "0.6.2"}) == {
        "@xterm/xterm 3.9.2: GHSA-h62m-39wp-xq3w"
    }


def test_a_stale_snapshot_warns_loudly_and_audits_nothing_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run(tmp_path, CURRENT_LOCK) == 0
    assert "SNAPSHOT STALE" not in capsys.readouterr().out
    later = audit.MAX_SNAPSHOT_AGE_DAYS + 1
    assert _run(tmp_path, CURRENT_LOCK, days_later=later) == audit.EXIT_NOT_AUDITED
    out = capsys.readouterr().out
    assert "#### SNAPSHOT STALE" in out and f"{later} days ago" in out
    assert "NOT AUDITED: pypi jinja2 3.1.6: the snapshot is stale" in out
    # What it knows still fails the run.
    assert _run(tmp_path, OLD_LOCK, days_later=later) == audit.EXIT_FINDINGS
    capsys.readouterr()

    # Each ecosystem's part ages on its own: a stale npm part leaves Python audited.
    snapshot = json.loads(audit.SNAPSHOT.read_text())
    snapshot["taken_for"]["npm"] = str(audit.load_snapshot().taken - timedelta(days=later))
    (tmp_path / "snapshot.json").write_text(json.dumps(snapshot))
    argv = ["--offline", "--lock", str(CURRENT_LOCK), "--allow", str(tmp_path / "allow.toml")]
    npm = ["--npm-lock", str(_npm_lock(tmp_path, xterm="3.8.1"))]
    argv += [*npm, "--snapshot", str(tmp_path / "snapshot.json")]
    assert audit.main(argv, today=audit.load_snapshot().taken) == audit.EXIT_NOT_AUDITED
    out = capsys.readouterr().out
    assert "#### SNAPSHOT STALE: security/advisories/snapshot.json's npm part" in out
    assert [line for line in out.splitlines() if "NOT AUDITED" in line] == [
        "NOT AUDITED: npm xterm 3.8.1: the snapshot is stale and no live source answered"
    ]


def test_a_package_outside_the_snapshot_is_not_audited(tmp_path: Path) -> None:
    lock = tmp_path / "new.lock"
    lock.write_text("jinja2==3.1.6\nsome-new-package==1.0\n")
    verdict = audit.judge(
        audit.read_python_lock(lock), audit.load_snapshot(), [], {}, audit.load_snapshot().taken
    )
    assert verdict.unaudited == [
        "pypi some-new-package 1.0: not in the advisory snapshot and no live source answered"
    ]
    assert verdict.exit_code == audit.EXIT_NOT_AUDITED


def test_the_committed_locks_and_snapshot_agree_and_nothing_unaccepted_stands_against_them() -> (
    None
):
    python = audit.read_python_lock(audit.LOCK)
    npm = audit.read_npm_lock(audit.NPM_LOCK)
    snapshot = audit.load_snapshot()
    assert {p.name for p in python} == snapshot.covered["pypi"], "make advisories after make lock"
    # npm's part is made by hand (docs/SECURITY.md, "Dependencies"): with each earlier name.
    for package in npm:
        assert set(snapshot.names(package)) <= snapshot.covered["npm"], package
    verdict = audit.judge(python + npm, snapshot, [], audit.load_allowed(), snapshot.taken)
    assert verdict.findings == [] and verdict.unaudited == []
    sources = json.loads(audit.SNAPSHOT.read_text())["sources"]
    assert {s["ecosystem"] for s in sources} == {"PyPI", "npm"}
    assert all(s["licence"] and s["data_as_of"] and s["url"] for s in sources)
    npm_records = [v for v in snapshot.vulns if v["affected"][0]["package"]["ecosystem"] == "npm"]
    assert npm_records and all(
        v["references"] and v["database_specific"]["taken"] for v in npm_records
    )


def test_osv_ranges() -> None:
    def hit(version: str, *events: dict[str, str], versions: tuple[str, ...] = ()) -> bool:
        record = {
            "affected": [
                {
                    "package": {"ecosystem": "PyPI", "name": "Some_Package"},
                    "ranges": [{"type": "ECOSYSTEM", "events": list(events)}],
                    "versions": list(versions),
                }
            ]
        }
        return audit.affects(record, audit.Package("pypi", "some-package", version))  # type: ignore[no-any-return]

    two_spans = ({"introduced": "1.0"}, {"fixed": "1.2"}, {"introduced": "2.0"}, {"fixed": "2.0.3"})
    assert [hit(v, *two_spans) for v in ("0.9", "1.0", "1.1.9", "1.2", "2.0.2", "2.0.3")] == [
        False, True, True, False, True, False,
    ]  # fmt: skip
    assert hit("5.0", {"fixed": "3"}, {"introduced": "4"})  # unsorted, open-ended
    assert hit("1.4", {"introduced": "0"}, {"last_affected": "1.4"})
    assert not hit("1.4.1", {"introduced": "0"}, {"last_affected": "1.4"})
    assert hit("1.0rc1", versions=("1.0rc1",)) and not hit("1.0", versions=("1.0rc1",))
    assert not hit("not-a-version", {"introduced": "0"})


def test_pypi_live_speaks_only_for_a_package_at_its_newest_release() -> None:
    answers = {
        "jinja2": {
            "info": {"version": "3.1.6"},
            "vulnerabilities": [{"id": "GHSA-test", "aliases": ["CVE-0000-1"], "details": "x"}],
        },
        "markupsafe": {"info": {"version": "9.0"}, "vulnerabilities": []},
    }

    def fetch(url: str) -> object:
        name = url.split("/")[-2]
        if name not in answers:
            raise OSError("no answer")
        return answers[name]

    packages = [audit.Package("pypi", n, "3.1.6") for n in ("jinja2", "markupsafe", "other")]
    live = audit.pypi_live(packages, fetch)
    assert live.covered == {packages[0]}
    assert [f.ids for f in live.findings] == [("GHSA-test", "CVE-0000-1")]
    assert "answered for 2 of 3" in live.notes[0]


def test_npm_audit_report_when_one_answers() -> None:
    novnc = audit.Package("npm", "@novnc/novnc", "1.7.0")
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
    live = audit.read_npm_audit(vulnerable, [novnc])
    assert live.covered == {novnc} and len(live.findings) == 1
    assert live.findings[0].ids == ("GHSA-aaaa-bbbb-cccc", "1099999")
    refused = audit.read_npm_audit({"message": "405 Method Not Allowed"}, [novnc])
    assert refused.covered == set() and "405" in refused.notes[0]


def test_the_npm_registry_flags_a_deprecated_locked_version_and_covers_nothing() -> None:
    documents = {
        "https://registry.npmjs.org/xterm": {
            "dist-tags": {"latest": "5.3.0"},
            "versions": {"3.8.0": {"deprecated": "Move to @xterm/xterm instead."}},
        },
        "https://registry.npmjs.org/@xterm%2fxterm": {
            "dist-tags": {"latest": "6.0.0"},
            "versions": {"6.0.0": {}},
        },
    }

    def fetch(url: str) -> object:
        if url not in documents:
            raise OSError("no answer")
        return documents[url]

    packages = [
        audit.Package("npm", "xterm", "3.8.0"),
        audit.Package("npm", "@xterm/xterm", "6.0.0"),
        audit.Package("npm", "@novnc/novnc", "1.7.0"),
    ]
    live = audit.npm_registry_live(packages, fetch)
    assert live.covered == set()
    assert [(f.package.name, f.ids) for f in live.findings] == [("xterm", ("deprecated",))]
    assert "Move to @xterm/xterm" in live.findings[0].summary
    assert live.notes == [
        "npm registry: answered for 2 of 3 packages; deprecated: xterm; newer releases: xterm 5.3.0"
    ]


def test_the_lock_holds_every_declared_dependency_at_a_version_it_allows() -> None:
    """The Makefile installs the lock only (then the checkout with --no-deps): a
    dependency added to pyproject.toml without `make lock` would simply be missing."""
    import tomllib

    from packaging.requirements import Requirement

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    declared = [*project["dependencies"], *extras["dev"], *extras["desktop"], *extras["build"]]
    locked = {p.name: p.version for p in audit.read_python_lock(audit.LOCK)}
    wrong = []
    for line in declared:
        requirement = Requirement(line)
        name = audit._name("pypi", requirement.name)
        version = locked.get(name)
        if version is None or not requirement.specifier.contains(version, prereleases=True):
            wrong.append(f"{line}: locked {version}")
    assert not wrong, f"run `make lock` (then `make advisories`): {wrong}"


def test_the_debs_install_the_audited_lines_of_the_lock_and_no_dev_tools() -> None:
    """scripts/deb.sh installs scripts/lock_subset.py's output with --require-hashes: every
    line is the lock's own (version and hashes), the run-time tree is whole (redis's
    async-timeout, needed by Debian's 3.11.2, included), and no test or build tool ships."""
    spec = importlib.util.spec_from_file_location(
        "lock_subset", ROOT / "scripts" / "lock_subset.py"
    )
    assert spec and spec.loader
    subset_module = importlib.util.module_from_spec(spec)
    sys.modules["lock_subset"] = subset_module  # dataclasses look their module up there
    spec.loader.exec_module(subset_module)
    locked = subset_module.read_lock(audit.LOCK)
    server = subset_module.subset(locked, subset_module.roots(ROOT / "pyproject.toml", []))
    agent = subset_module.subset(locked, subset_module.roots(ROOT / "pyproject.toml", ["desktop"]))
    names = {entry.name for entry in server}
    assert {"fastapi", "uvicorn", "uvloop", "redis", "async-timeout", "cryptography"} <= names
    assert {e.name for e in agent} - names == {"mss", "simplejpeg", "python-xlib", "numpy", "six"}
    for tool in ("pytest", "mypy", "ruff", "pyinstaller", "playwright", "pip-audit", "pip"):
        assert tool not in {e.name for e in agent}, tool
    text = audit.LOCK.read_text()
    assert all("\n".join(entry.lines) in text and len(entry.lines) > 1 for entry in agent)
