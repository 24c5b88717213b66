"""The NUL character in text from outside: PostgreSQL cannot store one in a text column
and refuses the whole statement, where SQLite stores it, so text with one is refused
where it enters (server/no_nul.py for requests, control/messages.py for what agents
say). JSON can carry one only as the escape ``\\u0000``, so a document is walked only
when that text is in it."""

from __future__ import annotations

from typing import Any

NUL = "\x00"
ESCAPED = "\\u0000"  # how JSON writes it (a raw one is not valid JSON)


def first_nul(value: Any, at: tuple[str | int, ...] = ()) -> tuple[str | int, ...] | None:
    """Where the first NUL is in a decoded JSON value (the keys and indexes to it,
    after ``at``), or None."""
    if isinstance(value, str):
        return at if NUL in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            if NUL in key:
                return (*at, key)
            found = first_nul(item, (*at, key))
            if found is not None:
                return found
    if isinstance(value, list):
        for index, item in enumerate(value):
            found = first_nul(item, (*at, index))
            if found is not None:
                return found
    return None


__all__ = ["ESCAPED", "NUL", "first_nul"]
