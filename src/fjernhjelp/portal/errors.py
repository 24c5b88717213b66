"""Why the portal refuses something, as exception types that carry what the caller needs."""

from __future__ import annotations

import uuid

from fjernhjelp.refusals import NotAllowed

__all__ = ["Conflict", "NotAllowed", "NotFound", "OperatorOnly", "PortalError"]


class PortalError(Exception):
    """A rule refused a change. ``message_key`` is a key in the message catalogue
    (shown to the user and written to the audit log as the reason)."""

    status = 422

    def __init__(self, message_key: str, **params: object) -> None:
        super().__init__(message_key)
        self.message_key = message_key
        self.params = params


class Conflict(PortalError):
    """The change clashes with what exists (a duplicate, a last admin)."""

    status = 409


class NotFound(Exception):
    """No such object *for this caller*. Raised alike for an id that does not exist and
    for one that belongs to another organisation, so an answer never tells them apart."""

    def __init__(self, kind: str, object_id: uuid.UUID | str | None) -> None:
        super().__init__(f"{kind} not found")
        self.kind = kind
        self.object_id = str(object_id) if object_id is not None else None


class OperatorOnly(PortalError):
    """Only an operator may do this to that account (an operator account), even for an
    admin who may see it. Not a NotFound: the admin sees the account in its list."""

    status = 403
