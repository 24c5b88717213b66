"""Who writes the audit log: domain services only, never a view, the API, the CLI or the demo.

A page, an API route or a command builds a Caller and calls a service; the service checks,
acts and audits. This walks every module of the package (parsed, not grepped: a view may
well have a function of its own called ``record``) and finds the ones that take the
log's writers in hand: ``record`` or ``Actor`` from ``fjernhjelp.audit.log``, or the
portal trail's ``changed`` / ``refusals_audited`` / ``audits_refusals``. A refusal too is
audited by the service that refused, under the action it names, never by a view.
"""

from __future__ import annotations

import ast
from pathlib import Path

import fjernhjelp

ROOT = Path(fjernhjelp.__file__).parent

# What counts as writing: the module and the names it offers for it.
WRITERS = {
    "fjernhjelp.audit.log": {"record", "record_all", "Entry", "Actor"},
    "fjernhjelp.portal.trail": {"changed", "refusals_audited", "audits_refusals"},
}

# Domain packages whose services write their own events.
SERVICE_PACKAGES = (
    "fjernhjelp.audit",
    "fjernhjelp.auth",
    "fjernhjelp.machines",
    "fjernhjelp.portal",
    "fjernhjelp.remote",
)
# Service modules outside those packages, named one by one.
SERVICE_MODULES = {
    "fjernhjelp.caller",  # builds each caller's Actor
}

# Never a writer, whatever else changes.
FORBIDDEN = (
    "fjernhjelp.server.pages",
    "fjernhjelp.server.api",
    "fjernhjelp.cli",
    "fjernhjelp.demo",
)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _absolute(module: str | None, level: int, importer: str, is_package: bool) -> str:
    if level == 0:
        return module or ""
    base = importer.split(".")
    # A package's own ``from . import x`` is relative to itself; a module's to its parent.
    base = base[: len(base) - level + (1 if is_package else 0)]
    return ".".join([*base, module] if module else base)


def writes_audit(source: str, importer: str, is_package: bool = False) -> set[str]:
    """The audit writers ``source`` imports or reaches, as "module.name" strings."""
    tree = ast.parse(source)
    found: set[str] = set()
    # Local names bound to a writer module itself (``from fjernhjelp.audit import log``).
    modules: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            source_module = _absolute(node.module, node.level, importer, is_package)
            for alias in node.names:
                if alias.name in WRITERS.get(source_module, ()):
                    found.add(f"{source_module}.{alias.name}")
                full = f"{source_module}.{alias.name}"
                if full in WRITERS:
                    modules[alias.asname or alias.name] = full
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in WRITERS:
                    # ``import a.b.c`` binds ``a``; ``import a.b.c as x`` binds ``x``.
                    modules[alias.asname or alias.name] = alias.name
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            owner = ast.unparse(node.value)
            module = modules.get(owner)
            if module is not None and node.attr in WRITERS[module]:
                found.add(f"{module}.{node.attr}")
    return found


def writers() -> dict[str, set[str]]:
    result: dict[str, set[str]] = {}
    for path in sorted(ROOT.rglob("*.py")):
        name = _module_name(path)
        used = writes_audit(path.read_text(), name, path.name == "__init__.py")
        if used:
            result[name] = used
    return result


def _under(name: str, prefixes: tuple[str, ...] | set[str]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def _allowed(name: str) -> bool:
    return _under(name, SERVICE_PACKAGES) or name in SERVICE_MODULES


def test_the_walk_finds_the_services_that_do_write() -> None:
    found = writers()
    # Known writers, so the test cannot pass by finding nothing.
    assert {
        "fjernhjelp.audit.log.record",
        "fjernhjelp.audit.log.Actor",
    } <= found["fjernhjelp.portal.sweep"] | found["fjernhjelp.auth.login"]
    assert "fjernhjelp.portal.trail.changed" in found["fjernhjelp.portal.organisations"]
    assert "fjernhjelp.audit.log.record" in found["fjernhjelp.machines.registry"]


def test_only_domain_services_write_the_audit_log() -> None:
    found = writers()
    assert sorted(n for n in found if not _allowed(n)) == []
    assert sorted(n for n in found if _under(n, FORBIDDEN)) == []


def test_no_view_audits_a_refusal() -> None:
    """Not even by wrapping a service call in the trail's savepoint: the service names
    its own action (``@audits_refusals``), so a page and the API cannot disagree."""
    found = writers()
    refusal_writers = {
        "fjernhjelp.audit.log.record",
        "fjernhjelp.portal.trail.refusals_audited",
        "fjernhjelp.portal.trail.audits_refusals",
    }
    assert (
        sorted(n for n, used in found.items() if used & refusal_writers and _under(n, FORBIDDEN))
        == []
    )
    # The services do: the walk sees them.
    assert "fjernhjelp.portal.trail.audits_refusals" in found["fjernhjelp.portal.groups"]


def test_the_allowed_list_admits_no_view() -> None:
    for name in SERVICE_MODULES:
        assert not _under(name, FORBIDDEN)
    for package in SERVICE_PACKAGES:
        assert not _under(package, FORBIDDEN)


def test_a_record_call_in_a_view_is_found() -> None:
    """The detector itself, on the three ways a view could take the writer in hand."""
    view = "fjernhjelp.server.pages.example"
    assert writes_audit(
        "from fjernhjelp.audit.log import Outcome, record\nrecord(db, 'x', Outcome.INFO)\n", view
    ) == {"fjernhjelp.audit.log.record"}
    assert writes_audit(
        "from fjernhjelp.audit import log\nlog.record(db, 'x', log.Outcome.INFO)\n", view
    ) == {"fjernhjelp.audit.log.record"}
    assert writes_audit("import fjernhjelp.audit.log as audit\naudit.record(db, 'x')\n", view) == {
        "fjernhjelp.audit.log.record"
    }
    assert writes_audit("from ...audit.log import record\n", view) == {
        "fjernhjelp.audit.log.record"
    }
    # A view's own function called ``record`` is not the audit log's.
    assert writes_audit("def record() -> None: ...\nrecord()\n", view) == set()
