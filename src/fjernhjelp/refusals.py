"""Why a service refuses: one family of exceptions, each carrying a machine-readable
reason (a key in the message catalogue, also written to the audit log) and the parameters
its sentence needs. The server maps the family once (server/problems.py), to a page and
to one JSON shape (RFC 9457 problem details, docs/api.md).

Domains keep named subclasses (portal/errors.py, auth/login.py's LoginRefused, the
machine and session refusals below) so callers can catch what they expect, but every one
is a Refusal: ``status``, ``reason``, ``params``, and the sentence that explains it.
"""

from __future__ import annotations

import uuid
from typing import ClassVar


class Refusal(Exception):
    """A rule refused what the caller asked. ``reason`` is a stable key (for the portal's
    rules also the catalogue key of the sentence); ``status`` the HTTP status it answers."""

    status: int = 422
    # Where the sentence for ``reason`` sits in the message catalogue: the reason itself
    # for the portal's keys ("grant.duplicate"), under a prefix for bare reasons.
    sentence_prefix: ClassVar[str] = ""
    # Seconds a client should wait before trying again (a Retry-After header), if any.
    retry_after: int | None = None

    def __init__(self, reason: str, **params: object) -> None:
        super().__init__(reason)
        self.reason = reason
        self.params = params
        # Set by the service that refused once it has undone its own work and written
        # the refusal's audit event: the request's transaction then keeps that event
        # (server/deps.get_db commits). Never set, the request rolls everything back.
        self.recorded = False

    @property
    def answer_reason(self) -> str:
        """The reason the answer names. The same as ``reason`` except where the audited
        reason must not be told to the caller (a login: unknown user vs wrong password)."""
        return self.reason

    @property
    def sentence_key(self) -> str:
        """The catalogue key of the sentence that explains this refusal to a person."""
        return self.sentence_prefix + self.reason


class NotAllowed(Refusal):
    """The caller's role does not allow this at all (not tied to any object id)."""

    status = 403

    def __init__(self, needed: str) -> None:
        super().__init__("not_allowed", needed=needed)
        self.needed = needed


class NotFound(Refusal):
    """No such object *for this caller*. Raised alike for an id that does not exist and
    for one the caller may not see (another organisation's), so an answer never tells
    them apart. ``kind`` names what was looked for; the reason is ``no_such_<kind>``."""

    status = 404

    def __init__(self, kind: str, object_id: uuid.UUID | str | None = None) -> None:
        super().__init__(f"no_such_{kind}")
        self.kind = kind
        self.object_id = str(object_id) if object_id is not None else None


class Conflict(Refusal):
    """The change clashes with what exists (a duplicate, a last admin)."""

    status = 409


class AccessError(Refusal):
    """Refusals of the machines and remote-session services: a bare reason (no params),
    explained by the sentence under ``sentence_prefix``."""

    status = 403
    sentence_prefix = "access.reason."

    def __init__(self, reason: str) -> None:
        super().__init__(reason)


class PackageRefused(AccessError):
    sentence_prefix = "package.refused."

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        # Out-of-range values are a form error; only a missing right is a 403.
        self.status = 403 if reason == "packages_not_granted" else 422


class EnrolmentRefused(AccessError):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        # A key or signature that does not decode is a malformed request, not a refusal.
        self.status = 422 if reason == "malformed" else 403


class AgentRefused(AccessError):
    """A control-link login that failed (unknown machine, revoked, bad signature)."""


class SessionRefused(AccessError):
    _STATUS: ClassVar[dict[str, int]] = {"bad_technician_key": 422, "machine_offline": 409}

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.status = self._STATUS.get(reason, 403)


class RelayRefused(AccessError):
    pass
