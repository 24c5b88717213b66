"""Why a service refuses: one family of exceptions, each carrying a machine-readable
reason (a key in the message catalogue, also written to the audit log) and the parameters
its sentence needs. The server maps the family once, to a page and to one JSON shape.
"""

from __future__ import annotations

from typing import ClassVar


class Refusal(Exception):
    """A rule refused what the caller asked. ``reason`` is a catalogue key."""

    status: ClassVar[int] = 422

    def __init__(self, reason: str, **params: object) -> None:
        super().__init__(reason)
        self.reason = reason
        self.params = params


class NotAllowed(Refusal):
    """The caller's role does not allow this at all (not tied to any object id)."""

    status = 403

    def __init__(self, needed: str) -> None:
        super().__init__(needed)
        self.needed = needed


class AccessError(Refusal):
    """Refusals of the machines and remote-session services."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)


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
