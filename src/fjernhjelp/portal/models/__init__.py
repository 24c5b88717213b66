"""The portal's tables, one module per object; imported here so callers need one path."""

from fjernhjelp.portal.models.agreement import (
    Agreement,
    AgreementCovers,
    AgreementKind,
    AgreementStatus,
)
from fjernhjelp.portal.models.grant import Grant, GrantStatus, Permission, grant_technicians
from fjernhjelp.portal.models.group import MachineGroup
from fjernhjelp.portal.models.notification import Notification
from fjernhjelp.portal.models.organisation import (
    Organisation,
    OrgKind,
    OrgStatus,
    default_access_enabled,
)
from fjernhjelp.portal.models.terms import Audience, TermsAcceptance, TermsVersion

__all__ = [
    "Agreement",
    "AgreementCovers",
    "AgreementKind",
    "AgreementStatus",
    "Audience",
    "Grant",
    "GrantStatus",
    "MachineGroup",
    "Notification",
    "OrgKind",
    "OrgStatus",
    "Organisation",
    "Permission",
    "TermsAcceptance",
    "TermsVersion",
    "default_access_enabled",
    "grant_technicians",
]
