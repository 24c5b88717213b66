"""Shapes of portal objects in the JSON API (documented in the OpenAPI document)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from fjernhjelp.auth.models import User
from fjernhjelp.portal import agreements, grants
from fjernhjelp.portal.members import Invitation
from fjernhjelp.portal.models import (
    Agreement,
    Grant,
    MachineGroup,
    Notification,
    Organisation,
    Permission,
    TermsAcceptance,
    TermsVersion,
)

PermissionName = Literal[
    "view", "control", "terminal", "files", "chat", "clipboard", "terminal_admin"
]


class OrganisationOut(BaseModel):
    id: uuid.UUID
    orgnr: str
    name: str
    kind: str
    receives_help: bool
    gives_help: bool
    access_enabled: bool
    status: str

    @classmethod
    def of(cls, org: Organisation) -> OrganisationOut:
        return cls(
            id=org.id,
            orgnr=org.orgnr,
            name=org.name,
            kind=org.kind,
            receives_help=org.receives_help,
            gives_help=org.gives_help,
            access_enabled=org.access_enabled,
            status=org.status,
        )


class OrganisationRef(BaseModel):
    id: uuid.UUID
    orgnr: str
    name: str

    @classmethod
    def of(cls, org: Organisation) -> OrganisationRef:
        return cls(id=org.id, orgnr=org.orgnr, name=org.name)


class OrganisationIn(BaseModel):
    orgnr: str = Field(max_length=20, description="nine digits, spaces allowed")
    name: str = Field(max_length=200)
    kind: Literal["gp_office", "dentist", "municipality", "hospital", "vendor", "other"]
    receives_help: bool = False
    gives_help: bool = False


class PolicyIn(BaseModel):
    access_enabled: bool
    receives_help: bool
    gives_help: bool


class AccountOut(BaseModel):
    id: uuid.UUID
    username: str
    display_name: str
    email: str
    organisation_id: uuid.UUID
    roles: list[str]
    status: str
    outside_eea: bool
    last_login_at: datetime | None

    @classmethod
    def of(cls, user: User) -> AccountOut:
        return cls(
            id=user.id,
            username=user.username,
            display_name=user.display_name,
            email=user.email,
            organisation_id=user.organisation_id,
            roles=user.roles,
            status=user.status,
            outside_eea=user.outside_eea,
            last_login_at=user.last_login_at,
        )


class TechnicianRef(BaseModel):
    id: uuid.UUID
    username: str
    display_name: str

    @classmethod
    def of(cls, user: User) -> TechnicianRef:
        return cls(id=user.id, username=user.username, display_name=user.display_name)


class AdminIn(BaseModel):
    username: str = Field(max_length=64)
    email: str = Field(max_length=254)
    display_name: str = Field(max_length=200)


class InviteIn(AdminIn):
    admin: bool = False
    technician: bool = False
    outside_eea: bool = False


class InvitationOut(BaseModel):
    account: AccountOut
    enrolment_link: str = Field(
        description="one-time link: shown once, hand it over to the person; only its hash is kept"
    )
    expires_at: datetime

    @classmethod
    def of(cls, invitation: Invitation, public_url: str, expires_at: datetime) -> InvitationOut:
        return cls(
            account=AccountOut.of(invitation.user),
            enrolment_link=invitation.link(public_url),
            expires_at=expires_at,
        )


class Flag(BaseModel):
    value: bool


class TermsIn(BaseModel):
    audience: Literal["receiving", "giving"]
    title: str = Field(max_length=200)
    body_nb: str = Field(max_length=100_000)
    body_en: str = Field(default="", max_length=100_000)


class TermsOut(BaseModel):
    id: uuid.UUID
    audience: str
    version: int
    title: str
    body_nb: str
    body_en: str
    published_at: datetime

    @classmethod
    def of(cls, terms: TermsVersion) -> TermsOut:
        return cls(
            id=terms.id,
            audience=terms.audience,
            version=terms.version,
            title=terms.title,
            body_nb=terms.body_nb,
            body_en=terms.body_en,
            published_at=terms.published_at,
        )


class AcceptanceOut(BaseModel):
    audience: str
    version: int
    accepted_by: str
    accepted_at: datetime

    @classmethod
    def of(cls, acceptance: TermsAcceptance) -> AcceptanceOut:
        return cls(
            audience=acceptance.audience,
            version=acceptance.terms.version,
            accepted_by=acceptance.accepted_by_name,
            accepted_at=acceptance.accepted_at,
        )


class TermsStatusOut(BaseModel):
    audience: str
    current: TermsOut | None
    accepted: AcceptanceOut | None = Field(description="acceptance of the current version")


class GroupIn(BaseModel):
    name: str = Field(max_length=100)


class GroupOut(BaseModel):
    id: uuid.UUID
    name: str
    is_default: bool

    @classmethod
    def of(cls, group: MachineGroup) -> GroupOut:
        return cls(id=group.id, name=group.name, is_default=group.is_default)


CoversName = Literal["support", "access", "both"]


class AgreementIn(BaseModel):
    vendor_org_id: uuid.UUID
    kind: Literal["remote_support", "data_processing"]
    covers: CoversName = Field(
        default="access",
        description="what the agreement lets the vendor give: support (one-time sessions "
        "joined with a code), access (installed agents, under grants on machine groups) or "
        "both. Defaults to access, what every agreement covered before Support existed, so "
        "that older clients keep their meaning; say it explicitly. Grants can rest only on "
        "an agreement that covers access.",
    )
    reference: str = Field(max_length=100)
    valid_from: datetime
    valid_until: datetime | None = Field(default=None, description="exclusive; none: until revoked")
    allows_preapproved: bool = False
    preapproved_clause: str | None = Field(default=None, max_length=4000)
    non_eea_staff_allowed: bool = False


class AgreementOut(BaseModel):
    id: uuid.UUID
    customer: OrganisationRef
    vendor: OrganisationRef
    kind: str
    covers: CoversName = Field(description="support, access or both")
    reference: str
    valid_from: datetime
    valid_until: datetime | None
    allows_preapproved: bool
    preapproved_clause: str | None
    non_eea_staff_allowed: bool
    status: str = Field(description="active, not_yet_valid, expired or revoked")

    @classmethod
    def of(cls, agreement: Agreement, now: datetime) -> AgreementOut:
        return cls(
            id=agreement.id,
            customer=OrganisationRef.of(agreement.customer),
            vendor=OrganisationRef.of(agreement.vendor),
            kind=agreement.kind,
            covers=agreement.coverage.value,
            reference=agreement.reference,
            valid_from=agreement.valid_from,
            valid_until=agreement.valid_until,
            allows_preapproved=agreement.allows_preapproved,
            preapproved_clause=agreement.preapproved_clause,
            non_eea_staff_allowed=agreement.non_eea_staff_allowed,
            status=agreements.effective_status(agreement, now),
        )


class GrantTermsIn(BaseModel):
    permissions: list[PermissionName]
    consent_required: bool = True
    expires_at: datetime | None = Field(
        default=None, description="none: the agreement's end, if it has one"
    )
    technician_ids: list[uuid.UUID] = Field(
        default_factory=list, description="empty: every technician of the vendor"
    )
    may_make_packages: bool = Field(
        default=False,
        description="the vendor's technicians may make installer packages for the group, "
        "i.e. put new machines into it that the group's other grants then reach",
    )

    def terms(self) -> grants.GrantTerms:
        return grants.GrantTerms(
            permissions=frozenset(Permission(p) for p in self.permissions),
            consent_required=self.consent_required,
            expires_at=self.expires_at,
            technician_ids=frozenset(self.technician_ids),
            may_make_packages=self.may_make_packages,
        )


class GrantIn(GrantTermsIn):
    group_id: uuid.UUID
    agreement_id: uuid.UUID


class GrantOut(BaseModel):
    id: uuid.UUID
    customer: OrganisationRef
    vendor: OrganisationRef
    group: GroupOut
    agreement_id: uuid.UUID
    agreement_reference: str
    permissions: list[str]
    consent_required: bool
    expires_at: datetime | None
    technicians: list[TechnicianRef]
    may_make_packages: bool
    status: str = Field(description="active, revoked, expired or agreement_ended")
    created_at: datetime

    @classmethod
    def of(cls, grant: Grant, now: datetime) -> GrantOut:
        return cls(
            id=grant.id,
            customer=OrganisationRef.of(grant.customer),
            vendor=OrganisationRef.of(grant.vendor),
            group=GroupOut.of(grant.group),
            agreement_id=grant.agreement_id,
            agreement_reference=grant.agreement.reference,
            permissions=sorted(p.value for p in grant.permissions),
            consent_required=grant.consent_required,
            expires_at=grant.expires_at,
            technicians=[TechnicianRef.of(t) for t in grant.technicians],
            may_make_packages=grant.may_make_packages,
            status=grants.effective_status(grant, now),
            created_at=grant.created_at,
        )


class ReceivedFromCustomer(BaseModel):
    """Grants one customer gave the caller's organisation; one block per customer."""

    customer: OrganisationRef
    grants: list[GrantOut]


class OverviewRow(BaseModel):
    group: GroupOut
    grants: list[GrantOut]


class NotificationOut(BaseModel):
    id: uuid.UUID
    kind: str
    params: dict[str, str]
    created_at: datetime

    @classmethod
    def of(cls, note: Notification, params: dict[str, str]) -> NotificationOut:
        return cls(id=note.id, kind=note.kind, params=params, created_at=note.created_at)
