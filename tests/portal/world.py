"""A small world for portal tests: an operator, a GP office, a vendor with a technician,
published and accepted terms, an agreement and a grant, built through the services."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy.orm import Session

from fjernhjelp.caller import Caller
from fjernhjelp.portal import agreements, grants, groups, terms
from fjernhjelp.portal.agreements import AgreementSpec
from fjernhjelp.portal.grants import GrantTerms
from fjernhjelp.portal.models import (
    Agreement,
    AgreementKind,
    Grant,
    MachineGroup,
    Organisation,
    OrgKind,
    Permission,
)
from fjernhjelp.portal.revocations import Revocation
from fjernhjelp.server.state import AppState
from tests.helpers import Account, make_org, make_user

CLAUSE = "§ 4.2: Leverandøren kan koble til uten samtykke ved planlagt vedlikehold."
ATTENDED = frozenset({Permission.VIEW, Permission.CONTROL, Permission.CHAT})


@dataclass
class World:
    db: Session
    state: AppState
    operator: Account
    gp: Organisation
    gp_admin: Account
    vendor: Organisation
    vendor_admin: Account
    tech: Account
    group: MachineGroup
    agreement: Agreement | None = None
    grant: Grant | None = None
    events: list[Revocation] = field(default_factory=list)

    def caller(self, account: Account) -> Caller:
        return Caller.of_person(account.user, self.state.now(), "192.0.2.10")

    def record_agreement(self, **overrides: object) -> Agreement:
        now = self.state.now()
        spec = {
            "vendor_org_id": self.vendor.id,
            "kind": AgreementKind.REMOTE_SUPPORT.value,
            "reference": "Avtale 2026-17",
            "valid_from": now - timedelta(days=1),
            "valid_until": now + timedelta(days=365),
            "allows_preapproved": False,
            "preapproved_clause": None,
            "non_eea_staff_allowed": False,
            # The world's vendor gives both kinds of help unless a test says otherwise.
            "covers": "both",
        }
        spec.update(overrides)
        agreement = agreements.record(
            self.db,
            self.caller(self.gp_admin),
            AgreementSpec(**spec),  # type: ignore[arg-type]
        )
        self.db.commit()
        return agreement

    def make_grant(
        self, agreement: Agreement | None = None, group: MachineGroup | None = None, **kw: object
    ) -> Grant:
        wanted = GrantTerms(**{"permissions": ATTENDED, **kw})  # type: ignore[arg-type]
        grant = grants.create(
            self.db,
            self.caller(self.gp_admin),
            group_id=(group or self.group).id,
            agreement_id=(agreement or self.agreement).id,  # type: ignore[union-attr]
            wanted=wanted,
        )
        self.db.commit()
        return grant


def publish_terms(db: Session, state: AppState, operator: Account, audience: str) -> None:
    terms.publish(
        db,
        Caller.of_person(operator.user, state.now()),
        audience=audience,
        title=f"Vilkår for å {'motta' if audience == 'receiving' else 'gi'} hjelp",
        body_nb="Vilkårstekst.",
        body_en="Terms text.",
    )


def build_world(
    db: Session, state: AppState, *, agreement: bool = True, grant: bool = True
) -> World:
    operator_org = make_org(db, "Driftsoperatør", kind=OrgKind.OTHER, receives=False)
    operator = make_user(db, state, operator_org, "operator", operator=True, technician=False)
    gp = make_org(db, "Legekontoret Fjordbyen")
    gp_admin = make_user(db, state, gp, "gp-admin", admin=True, technician=False)
    vendor = make_org(db, "Journalleverandør AS", kind=OrgKind.VENDOR, receives=False, gives=True)
    vendor_admin = make_user(db, state, vendor, "vendor-admin", admin=True, technician=False)
    tech = make_user(db, state, vendor, "tekniker")
    group = groups.ensure_default(db, gp, Caller.of_person(operator.user, state.now()).actor)
    for audience in ("receiving", "giving"):
        publish_terms(db, state, operator, audience)
    db.commit()
    world = World(db, state, operator, gp, gp_admin, vendor, vendor_admin, tech, group)
    state.revocations.subscribe(world.events.append)
    terms.accept(db, world.caller(gp_admin), "receiving")
    terms.accept(db, world.caller(vendor_admin), "giving")
    db.commit()
    if agreement:
        world.agreement = world.record_agreement()
        if grant:
            world.grant = world.make_grant()
    return world
