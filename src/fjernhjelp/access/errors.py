"""Refusals in the Access domain; each carries a machine-readable reason for the audit
log and for the caller to translate."""

from __future__ import annotations


class AccessError(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class NotFound(AccessError):
    """The object does not exist, or the caller may not know that it does (same answer)."""

    def __init__(self, what: str = "not_found") -> None:
        super().__init__(what)


class PackageRefused(AccessError):
    pass


class EnrolmentRefused(AccessError):
    pass


class AgentRefused(AccessError):
    """A control-link login that failed (unknown machine, revoked, bad signature)."""


class SessionRefused(AccessError):
    pass


class RelayRefused(AccessError):
    pass
