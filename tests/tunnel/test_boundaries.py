"""The tunnel runs at every end: it must not pull in server, portal, database or agent
code (DESIGN.md, "Boundaries in the code")."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import fjernhjelp.tunnel

FORBIDDEN = ("fjernhjelp.server", "fjernhjelp.portal", "fjernhjelp.db", "fjernhjelp.agent")


def test_no_module_of_the_tunnel_imports_across_the_boundary() -> None:
    package = Path(fjernhjelp.tunnel.__file__).parent
    for path in package.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                assert name.startswith("fjernhjelp.tunnel") or not name.startswith("fjernhjelp"), (
                    f"{path.name} imports {name}"
                )


def test_importing_the_tunnel_loads_nothing_across_the_boundary() -> None:
    code = (
        "import sys, fjernhjelp.tunnel\n"
        f"bad = [m for m in sys.modules if m.startswith({FORBIDDEN!r})]\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == ""
