"""Portal data for ``fjernhjelp demo``: terms accepted, an agreement and an attended grant,
so the demo's technician has a customer to help from the first minute."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from fjernhjelp.auth.models import User
from fjernhjelp.caller import Caller
from fjernhjelp.db.base import utcnow
from fjernhjelp.portal import agreements, grants, groups, terms
from fjernhjelp.portal.agreements import AgreementSpec
from fjernhjelp.portal.models import Agreement, Audience, Organisation, Permission

DEMO_TERMS = {
    Audience.RECEIVING: (
        "Vilkår for å motta hjelp (demo)",
        "Virksomheten sørger for at hver økt har et formål og en avtale.",
        "The organisation makes sure every session has a purpose and an agreement.",
    ),
    Audience.GIVING: (
        "Vilkår for å gi hjelp (demo)",
        "Leverandøren bruker personlige kontoer og logger hver tilkobling.",
        "The vendor uses personal accounts and logs every connection.",
    ),
}


def seed(
    db: Session,
    operator: User,
    customer: Organisation,
    customer_admin: User,
    vendor: Organisation,
    vendor_admin: User,
) -> None:
    """Idempotent: does only what is missing."""
    now = utcnow()
    op = Caller.of_person(operator, now)
    for audience, (title, nb, en) in DEMO_TERMS.items():
        if terms.current(db, audience) is None:
            terms.publish(db, op, audience=audience, title=title, body_nb=nb, body_en=en)
    terms.accept(db, Caller.of_person(customer_admin, now), Audience.RECEIVING.value)
    terms.accept(db, Caller.of_person(vendor_admin, now), Audience.GIVING.value)
    group = groups.ensure_default(db, customer, op.actor)
    existing = db.execute(
        select(Agreement).where(
            Agreement.customer_org_id == customer.id, Agreement.vendor_org_id == vendor.id
        )
    ).first()
    if existing is not None:
        return
    admin = Caller.of_person(customer_admin, now)
    agreement = agreements.record(
        db,
        admin,
        AgreementSpec(
            vendor_org_id=vendor.id,
            kind="remote_support",
            reference="Demoavtale 1",
            valid_from=now - timedelta(days=1),
            valid_until=None,
            # Both, so the demo shows Support (one-time sessions) beside Access.
            covers="both",
        ),
    )
    grants.create(
        db,
        admin,
        group_id=group.id,
        agreement_id=agreement.id,
        wanted=grants.GrantTerms(
            permissions=frozenset(
                {Permission.VIEW, Permission.CONTROL, Permission.CHAT, Permission.CLIPBOARD}
            )
        ),
    )
