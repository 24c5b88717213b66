"""Failures of the desktop service that end a session before it starts."""

from __future__ import annotations


class DesktopUnavailable(Exception):
    """The X display cannot be used (not running, no access, a missing extension)."""

    def __init__(self, display: str, reason: str) -> None:
        super().__init__(f"X display {display}: {reason}")
        self.display = display
        self.reason = reason
