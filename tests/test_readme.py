"""The README agrees with the program: the quick start says how to move the port, the
commands table names every way to connect, and the grant permissions it lists are the
ones the grant form offers."""

from __future__ import annotations

import re
from pathlib import Path

import typer.main

from fjernhjelp.cli import app
from fjernhjelp.portal.models import Permission
from fjernhjelp.server.pages.portal_grants import PERMISSIONS

README = (Path(__file__).parents[1] / "README.md").read_text()


def _section(title: str) -> str:
    start = README.index(f"## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start : end if end != -1 else None]


def test_the_quick_start_says_how_to_change_the_port() -> None:
    quick = _section("Quick start")
    assert "FJERNHJELP_BIND=" in quick and "make run" in quick


def test_the_commands_table_names_every_connect_option() -> None:
    command = typer.main.get_command(app).commands["connect"]  # type: ignore[attr-defined]
    options = {o for p in command.params for o in p.opts if o.startswith("--")}
    rows = [line for line in _section("Commands").splitlines() if "fjernhjelp connect" in line]
    missing = sorted(o for o in options - {"--help", "--as"} if not any(o in r for r in rows))
    assert missing == []


def test_the_permissions_named_are_the_grant_forms() -> None:
    found = re.search(r"the grant's permissions are (.*?)\. System", README.replace("\n", " "))
    assert found is not None
    named = set(re.findall(r"\*(\w+)\*", found.group(1)))
    assert named == {p.value for p in Permission}
    # The form offers exactly these (and the catalogue names each).
    assert [p.value for p in Permission] == PERMISSIONS


SRC = Path(__file__).parents[1] / "src" / "fjernhjelp"
# Described in the map though not a package: Alembic loads these files by path.
NOT_PACKAGES = {"db/migrations/"}


def test_the_source_map_lists_exactly_the_packages_on_disk() -> None:
    rows = re.findall(r"^\| `([^`]+)` \|", _section("Source map"), re.MULTILINE)
    assert len(rows) == len(set(rows)), "a folder is listed twice"
    packages = {
        "./" if p.parent == SRC else f"{p.parent.relative_to(SRC).as_posix()}/"
        for p in SRC.rglob("__init__.py")
    }
    assert set(rows) == packages | NOT_PACKAGES
    assert all((SRC / row).is_dir() for row in rows)
