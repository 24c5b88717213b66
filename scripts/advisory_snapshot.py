"""`make advisories`: writes security/advisories/snapshot.json, the advisory data
`make audit` checks the lock files against offline (scripts/audit.py).

Records for exactly the packages of requirements/dev.lock and package-lock.json, in OSV's
format, trimmed to what matching needs (id, aliases, summary, affected ranges and
versions, where each came from):

- the PyPA advisory database (PYSEC records, CC-BY-4.0), from a checkout given with
  --pypa-db (its `vulns/<package>/*.yaml`);
- PyPI's JSON API, read now: the advisories of each project's newest release (OSV's data
  as PyPI serves it; GHSA and PYSEC ids), recorded as affecting that release only, since
  the API names no ranges.

npm: no source of npm advisories answers from the machines this is made on (the
registry's audit endpoint refuses, OSV and GitHub's APIs do not resolve), so the npm part
(records, sources, `covered`, `continues`, its own `taken_for` date) is assembled by hand
as docs/SECURITY.md "Dependencies" describes, and this script carries it over unchanged
from the snapshot it replaces: rebuilding the Python part does not make the npm part look
newer than it is. Data, not code: nothing here runs what it reads.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("audit_script", ROOT / "scripts" / "audit.py")
assert _spec and _spec.loader
audit = importlib.util.module_from_spec(_spec)
sys.modules["audit_script"] = audit
_spec.loader.exec_module(audit)

SUMMARY_CHARS = 200


def _summary(record: dict[str, Any]) -> str:
    text = str(record.get("summary") or record.get("details") or "").strip()
    return " ".join(text.split())[:SUMMARY_CHARS]


def _trim(record: dict[str, Any], name: str, source: str) -> dict[str, Any]:
    affected = [
        {k: entry[k] for k in ("package", "ranges", "versions") if k in entry}
        for entry in record.get("affected", [])
        if audit._name("pypi", str(entry.get("package", {}).get("name", ""))) == name
    ]
    return {
        "id": record["id"],
        "aliases": sorted(record.get("aliases") or []),
        "summary": _summary(record),
        "modified": str(record.get("modified", "")),
        "affected": affected,
        "database_specific": {"source": source},
    }


def _git(db: Path, *args: str) -> str:
    command = ["git", "-C", str(db), *args]  # git from PATH, as make runs it
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout  # noqa: S603


def pypa_records(db: Path, name: str) -> list[dict[str, Any]]:
    """A working tree or a bare clone (read at HEAD) of pypa/advisory-database."""
    folder = db / "vulns" / name
    if folder.is_dir():
        texts = [(p.name, p.read_text()) for p in sorted(folder.glob("*.yaml"))]
    else:
        listing = _git(db, "ls-tree", "--name-only", "HEAD", f"vulns/{name}/").split()
        texts = [(Path(p).name, _git(db, "show", f"HEAD:{p}")) for p in listing]
    records = [(file, yaml.safe_load(text)) for file, text in texts]
    return [
        _trim(record, name, f"pypa/advisory-database vulns/{name}/{file}")
        for file, record in records
        if not record.get("withdrawn")  # taken back by its authors: not an advisory
    ]


def pypi_records(name: str, known: set[str]) -> tuple[str, list[dict[str, Any]]]:
    data = audit._http_json(f"https://pypi.org/pypi/{name}/json")
    newest = str(data["info"]["version"])
    records = []
    for vuln in data.get("vulnerabilities") or []:
        ids = {str(vuln["id"]), *map(str, vuln.get("aliases") or [])}
        if ids & known:
            continue  # the PyPA record, with its ranges, says more
        known |= ids
        records.append(
            {
                "id": str(vuln["id"]),
                "aliases": sorted(map(str, vuln.get("aliases") or [])),
                "summary": _summary(vuln),
                "modified": "",
                "affected": [
                    {"package": {"ecosystem": "PyPI", "name": name}, "versions": [newest]}
                ],
                "database_specific": {
                    "source": f"PyPI JSON API, {name} {newest}",
                    "fixed_in": list(vuln.get("fixed_in") or []),
                },
            }
        )
    return newest, records


def _npm_part(previous: dict[str, Any]) -> dict[str, Any]:
    """The hand-made npm part of the snapshot being replaced (see the module's text)."""
    return {
        "vulns": [
            v
            for v in previous.get("vulns", [])
            if any(str(a["package"]["ecosystem"]).lower() == "npm" for a in v["affected"])
        ],
        "sources": [s for s in previous.get("sources", []) if s.get("ecosystem") == "npm"],
        "covered": previous.get("covered", {}).get("npm", {}),
        "continues": previous.get("continues", {}),
        "taken_for": {k: v for k, v in previous.get("taken_for", {}).items() if k == "npm"},
        "not_covered": previous.get("not_covered", {}),
    }


def main() -> int:
    parser = argparse.ArgumentParser(prog="scripts/advisory_snapshot.py")
    parser.add_argument("--pypa-db", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=audit.SNAPSHOT)
    args = parser.parse_args()
    db: Path = args.pypa_db
    revision = _git(db, "rev-parse", "HEAD").strip()
    as_of = _git(db, "log", "-1", "--format=%cs", "HEAD").strip()
    python = audit.read_python_lock(audit.LOCK)
    npm = _npm_part(json.loads(args.out.read_text()) if args.out.exists() else {})
    missing = {p.name for p in audit.read_npm_lock(audit.NPM_LOCK)} - set(npm["covered"])
    if missing:
        print(f"npm packages the npm part does not cover (docs/SECURITY.md): {sorted(missing)}")
    vulns: list[dict[str, Any]] = []
    newest: dict[str, str] = {}
    for package in python:
        records = pypa_records(db, package.name)
        known = {i for r in records for i in (r["id"], *r["aliases"])}
        newest[package.name], more = pypi_records(package.name, known)
        vulns += records + more
        print(f"{package.name}: {len(records)} PyPA, {len(more)} PyPI", flush=True)
    today = datetime.now(UTC).date().isoformat()
    snapshot = {
        "taken": today,
        "sources": [
            {
                "name": "PyPA advisory database",
                "url": "https://github.com/pypa/advisory-database",
                "revision": revision,
                "data_as_of": as_of,
                "licence": "CC-BY-4.0",
                "ecosystem": "PyPI",
            },
            {
                "name": "PyPI JSON API (vulnerabilities of each project's newest release)",
                "url": "https://pypi.org/pypi/<project>/json",
                "data_as_of": today,
                "licence": "CC-BY-4.0 (OSV data: PyPA and GitHub advisory databases)",
                "ecosystem": "PyPI",
            },
            *npm["sources"],
        ],
        "not_covered": npm["not_covered"],
        "covered": {"PyPI": newest, "npm": npm["covered"]},
        "continues": npm["continues"],
        "taken_for": npm["taken_for"],
        "vulns": vulns + npm["vulns"],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(snapshot, indent=1, sort_keys=True) + "\n")
    print(f"{args.out}: {len(vulns)} records for {len(python)} Python packages")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
