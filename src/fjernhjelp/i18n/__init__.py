"""The message catalogue (messages.toml): every user-facing text, bokmål and English.

Each key is a table with one entry per language, so a missing translation stands out
next to the one that exists, and a test checks that none is missing.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Sequence
from functools import cache
from pathlib import Path

LANGUAGES = ("nb", "en")
DEFAULT_LANGUAGE = "nb"
CATALOGUE = Path(__file__).with_name("messages.toml")


@cache
def catalogue() -> dict[str, dict[str, str]]:
    with CATALOGUE.open("rb") as fh:
        raw = tomllib.load(fh)
    flat: dict[str, dict[str, str]] = {}

    def walk(prefix: str, table: dict[str, object]) -> None:
        if any(lang in table for lang in LANGUAGES) and all(
            isinstance(v, str) for v in table.values()
        ):
            flat[prefix] = {k: str(v) for k, v in table.items()}
            return
        for key, value in table.items():
            if isinstance(value, dict):
                walk(f"{prefix}.{key}" if prefix else key, value)

    walk("", raw)
    return flat


class Translator:
    def __init__(self, language: str) -> None:
        self.language = language if language in LANGUAGES else DEFAULT_LANGUAGE

    def __call__(self, key: str, **values: object) -> str:
        entry = catalogue().get(key)
        if entry is None:
            # A missing key is a bug; show it plainly rather than an empty string.
            return key
        text = entry.get(self.language) or entry.get(DEFAULT_LANGUAGE) or key
        return text.format(**values) if values else text


def negotiate(
    cookie: str | None, user_language: str | None, accept_language: str | None, default: str
) -> str:
    for candidate in (cookie, user_language):
        if candidate in LANGUAGES:
            return candidate
    if accept_language:
        for part in accept_language.split(","):
            tag = part.split(";")[0].strip().lower()
            primary = tag.split("-")[0]
            if primary in ("nb", "no", "nn"):
                return "nb"
            if primary == "en":
                return "en"
    return default


def language_of(lang: str | None) -> str | None:
    """The catalogue's language for a locale (``LANG``, ``LC_MESSAGES``), if it has one."""
    if not lang:
        return None
    primary = lang.split(".")[0].split("_")[0].lower()
    if primary in ("nb", "no", "nn"):
        return "nb"
    return "en" if primary == "en" else None


def command_line_language(argv: Sequence[str]) -> str:
    """The language a command-line program speaks: its ``--language`` option, else the
    locale's. Read before parsing, so that even the help and usage errors speak it."""
    for i, arg in enumerate(argv):
        if arg.startswith("--language="):
            return arg.split("=", 1)[1]
        if arg == "--language" and i + 1 < len(argv):
            return argv[i + 1]
    return language_of(os.environ.get("LANG")) or DEFAULT_LANGUAGE
