"""Per-organisation policy the operator sets: whether Access (installed agents) is
allowed, and whether the organisation receives and gives help at all.

Municipalities start with Access off (Support only) until the operator turns it on;
that is a default (models.default_access_enabled), not a rule hard-coded here.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy.orm import Session

from fjernhjelp.caller import Caller
from fjernhjelp.portal import groups, organisations
from fjernhjelp.portal.errors import PortalError
from fjernhjelp.portal.models import Organisation
from fjernhjelp.portal.revocations import Revocation, RevocationKind, announce
from fjernhjelp.portal.trail import audits_refusals, changed


@dataclass(frozen=True, slots=True)
class Policy:
    access_enabled: bool
    receives_help: bool
    gives_help: bool

    @classmethod
    def of(cls, org: Organisation) -> Policy:
        return cls(org.access_enabled, org.receives_help, org.gives_help)


@audits_refusals("organisation.policy_changed")
def set_policy(db: Session, caller: Caller, org_id: uuid.UUID, policy: Policy) -> Organisation:
    caller.require_operator()
    org = organisations.get(db, caller, org_id)
    if not (policy.receives_help or policy.gives_help):
        raise PortalError("organisation.no_role")
    old = Policy.of(org)
    if old == policy:
        return org
    before = organisations.describe(org)
    org.access_enabled = policy.access_enabled
    org.receives_help = policy.receives_help
    org.gives_help = policy.gives_help
    db.flush()
    changed(
        db,
        caller,
        "organisation.policy_changed",
        org_id=org.id,
        before=before,
        after=organisations.describe(org),
    )
    if policy.receives_help:
        groups.ensure_default(db, org, caller.actor)
    for kind, stopped in (
        (RevocationKind.ACCESS_DISABLED, old.access_enabled and not policy.access_enabled),
        (RevocationKind.STOPPED_RECEIVING, old.receives_help and not policy.receives_help),
        (RevocationKind.STOPPED_GIVING, old.gives_help and not policy.gives_help),
    ):
        if stopped:
            announce(
                db,
                Revocation(
                    kind=kind,
                    occurred_at=caller.now,
                    customer_org_id=None if kind is RevocationKind.STOPPED_GIVING else org.id,
                    vendor_org_id=org.id if kind is RevocationKind.STOPPED_GIVING else None,
                ),
            )
    return org
