"""Why the portal refuses something: its named members of the one refusal family
(fjernhjelp/refusals.py), which also holds NotFound and NotAllowed (re-exported here)."""

from __future__ import annotations

from fjernhjelp import refusals
from fjernhjelp.refusals import NotAllowed, NotFound, Refusal

__all__ = ["Conflict", "NotAllowed", "NotFound", "OperatorOnly", "PortalError"]


class PortalError(Refusal):
    """A portal rule refused a change. ``reason`` is a key in the message catalogue
    (shown to the user and written to the audit log as the reason)."""


class Conflict(PortalError, refusals.Conflict):
    """The change clashes with what exists (a duplicate, a last admin). A PortalError
    too, so the portal audits it as it does every rule's refusal."""

    status = 409


class OperatorOnly(PortalError):
    """Only an operator may do this to that account (an operator account), even for an
    admin who may see it. Not a NotFound: the admin sees the account in its list."""

    status = 403
