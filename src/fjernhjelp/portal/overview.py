"""At a glance: which vendors can reach which of our groups, and (for a vendor) what each
customer has granted us, one customer at a time."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy.orm import Session

from fjernhjelp.caller import Caller
from fjernhjelp.portal import grants, groups
from fjernhjelp.portal.models import Grant, MachineGroup, Organisation


@dataclass(frozen=True, slots=True)
class GroupAccess:
    group: MachineGroup
    grants: list[Grant]  # live grants only, by vendor name


@dataclass(frozen=True, slots=True)
class CustomerGrants:
    customer: Organisation
    grants: list[Grant]  # newest first, ended ones included


def who_has_access(db: Session, caller: Caller) -> list[GroupAccess]:
    live: dict[uuid.UUID, list[Grant]] = {}
    for grant in grants.list_as_customer(db, caller):
        if grants.effective_status(grant, caller.now) == "active":
            live.setdefault(grant.group_id, []).append(grant)
    return [
        GroupAccess(group, sorted(live.get(group.id, []), key=lambda g: g.vendor.name))
        for group in groups.list_own(db, caller)
    ]


def received_by_customer(db: Session, caller: Caller) -> list[CustomerGrants]:
    """Kept apart per customer, so nothing of one customer's shows under another's."""
    by_customer: dict[uuid.UUID, list[Grant]] = {}
    customers: dict[uuid.UUID, Organisation] = {}
    for grant in grants.received(db, caller):
        by_customer.setdefault(grant.customer_org_id, []).append(grant)
        customers[grant.customer_org_id] = grant.customer
    return [
        CustomerGrants(customers[cid], by_customer[cid])
        for cid in sorted(customers, key=lambda c: customers[c].name)
    ]
