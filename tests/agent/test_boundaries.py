"""The agent runs on a customer machine: it must not load server, portal or database code."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import fjernhjelp.agent

FORBIDDEN = ("fjernhjelp.server", "fjernhjelp.portal", "fjernhjelp.db", "fjernhjelp.auth",
             "fjernhjelp.audit", "fjernhjelp.config", "fjernhjelp.keystore", "sqlalchemy",
             "fastapi", "tkinter")  # fmt: skip


def test_agent_modules_import_nothing_from_the_server_side() -> None:
    modules = sorted(
        f"fjernhjelp.agent.{p.stem}"
        for p in Path(fjernhjelp.agent.__file__).parent.glob("*.py")
        # tkapp and chatwindow are the dialogs' own (loaded in the Tk processes only)
        if p.stem not in ("__init__", "tkapp", "chatwindow")
    )
    probe = (
        "import importlib, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        f"bad = sorted(m for m in sys.modules if m.startswith({FORBIDDEN!r}))\n"
        "print(','.join(bad))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert len(modules) >= 13
    assert result.stdout.strip() == ""
