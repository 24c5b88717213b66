"""docs/SECURITY.md points at code and tests for every measure it claims: each path it
names must exist, and each ``file::test`` must name a test that is in that file. A measure
whose proof was renamed or removed fails here instead of living on in the document."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "SECURITY.md"
PATH = re.compile(
    r"(?<![\w/.-])((?:src|tests|docs|scripts|security|bench)/[\w./-]*\w|package-lock\.json)"
    r"(?:::(\w+))?"
)


def references(text: str) -> list[tuple[str, str | None]]:
    return [(m.group(1), m.group(2)) for m in PATH.finditer(text)]


def test_every_path_and_test_named_in_security_md_exists() -> None:
    refs = references(DOC.read_text())
    assert len(refs) > 60  # the risk table and the Normen table are read
    missing = []
    for path, test in refs:
        target = ROOT / path
        if not target.exists():
            missing.append(path)
        elif test and not re.search(rf"^(async )?def {test}\(", target.read_text(), re.M):
            missing.append(f"{path}::{test}")
    assert missing == []


def test_the_check_sees_a_path_that_is_not_there() -> None:
    refs = references("see `tests/no/such_test.py::test_x` and `src/fjernhjelp/gone.py`.")
    assert refs == [("tests/no/such_test.py", "test_x"), ("src/fjernhjelp/gone.py", None)]
