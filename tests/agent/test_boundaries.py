"""What runs on a customer machine (the agent, the stream services) must not load server,
portal or database code; what runs at the technician's (the technician's side of each
stream, ``fjernhjelp.technician``) must not load the agent either. Only the agent's Tk
programs (``agent.windows``, run in their own processes) may load tkinter.

Two checks each: every import statement, also those inside functions (``ast``), and what
importing the modules really loads (a fresh interpreter), which catches a forbidden
module pulled in by way of an allowed one.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import fjernhjelp

SRC = Path(fjernhjelp.__file__).parent
SERVER_SIDE = ("fjernhjelp.server", "fjernhjelp.portal", "fjernhjelp.db", "fjernhjelp.auth",
               "fjernhjelp.audit", "fjernhjelp.config", "fjernhjelp.keystore", "sqlalchemy",
               "fastapi")  # fmt: skip
TK = ("tkinter",)
AGENT = ("fjernhjelp.agent",)


def _module(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules(*patterns: str) -> list[str]:
    return sorted({_module(p) for pattern in patterns for p in SRC.glob(pattern)})


WINDOWS = _modules("agent/windows/**/*.py")
AGENT_SIDE = sorted(set(_modules("agent/**/*.py", "streams/**/*.py")) - set(WINDOWS))
TECHNICIAN_SIDE = _modules("streams/*/technician.py", "streams/*/wire.py", "technician/**/*.py")

# (modules, what none of them may import or load)
RULES = {
    "agent and stream services": (AGENT_SIDE, SERVER_SIDE + TK),
    "agent Tk programs": (WINDOWS, SERVER_SIDE),
    "technician side": (TECHNICIAN_SIDE, SERVER_SIDE + TK + AGENT),
}


def _matches(name: str, forbidden: tuple[str, ...]) -> bool:
    return any(name == f or name.startswith(f + ".") for f in forbidden)


def _imported_names(path: Path, module: str) -> list[str]:
    """Every module an import statement in ``path`` names, relative ones resolved."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")
            base = base[: len(base) - node.level + 1] if node.level else []
            stem = ".".join([*base, *([node.module] if node.module else [])])
            # ``from fjernhjelp import config`` names fjernhjelp.config
            names += [stem, *(f"{stem}.{alias.name}" for alias in node.names)]
    return names


def _path(module: str) -> Path:
    relative = Path(*module.split(".")[1:])
    package = SRC / relative / "__init__.py"
    return package if package.exists() else (SRC / relative).with_suffix(".py")


def test_the_walk_finds_every_side() -> None:
    # A walk that finds nothing would let every other test here pass.
    assert {"fjernhjelp.agent.runner", "fjernhjelp.agent.consent"} <= set(AGENT_SIDE)
    assert {
        "fjernhjelp.streams.desktop.service",
        "fjernhjelp.streams.desktop.encoders.tight",
        "fjernhjelp.streams.shell.service",
        "fjernhjelp.streams.files.service",
        "fjernhjelp.streams.chat.service",
    } <= set(AGENT_SIDE)
    assert {
        "fjernhjelp.agent.windows.tkapp",
        "fjernhjelp.agent.windows.chat",
        "fjernhjelp.agent.windows.consent",
        "fjernhjelp.agent.windows.indicator",
    } <= set(WINDOWS)
    assert {
        "fjernhjelp.streams.desktop.technician",
        "fjernhjelp.streams.shell.technician",
        "fjernhjelp.streams.files.technician",
        "fjernhjelp.streams.files.wire",
        "fjernhjelp.streams.chat.wire",
        "fjernhjelp.technician.tunnel",
    } <= set(TECHNICIAN_SIDE)


@pytest.mark.parametrize("side", list(RULES))
def test_no_import_statement_crosses_the_boundary(side: str) -> None:
    modules, forbidden = RULES[side]
    crossings = [
        f"{module} imports {name}"
        for module in modules
        for name in _imported_names(_path(module), module)
        if _matches(name, forbidden)
    ]
    assert crossings == []


@pytest.mark.parametrize("side", list(RULES))
def test_importing_loads_nothing_across_the_boundary(side: str) -> None:
    modules, forbidden = RULES[side]
    probe = (
        "import importlib, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        f"forbidden = {forbidden!r}\n"
        "bad = sorted(m for m in sys.modules\n"
        "             if any(m == f or m.startswith(f + '.') for f in forbidden))\n"
        "print(','.join(bad))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120
    )
    assert result.stdout.strip() == ""
