"""Grant rules, each refusal shown with its audit event and the state left as it was."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from fjernhjelp.audit.models import AuditEvent
from fjernhjelp.portal import agreements, grants, terms
from fjernhjelp.portal.errors import Conflict, NotFound, PortalError
from fjernhjelp.portal.grants import GrantTerms
from fjernhjelp.portal.models import Grant, OrgKind, Permission
from fjernhjelp.portal.revocations import RevocationKind
from tests.helpers import make_org, make_user
from tests.portal.world import ATTENDED, CLAUSE, World, build_world, publish_terms


@pytest.fixture
def bare(db, state) -> World:
    """An agreement but no grant yet."""
    return build_world(db, state, grant=False)


def _grant_count(world: World) -> int:
    world.db.expire_all()
    return world.db.execute(select(func.count()).select_from(Grant)).scalar_one()


def _refused(world: World, error: type[Exception], key: str | None, **create) -> None:
    """Try to create a grant as the GP admin; it must be refused, audited, and leave
    no grant behind."""
    before = _grant_count(world)
    caller = world.caller(world.gp_admin)
    with pytest.raises(error) as info:  # grants.create audits its own refusal
        grants.create(
            world.db,
            caller,
            group_id=create.pop("group_id", world.group.id),
            agreement_id=create.pop("agreement_id", world.agreement.id),
            wanted=GrantTerms(**{"permissions": ATTENDED, **create}),
        )
    if key is not None:
        assert info.value.reason == key
    assert _grant_count(world) == before
    event = world.db.execute(
        select(AuditEvent).order_by(AuditEvent.seq.desc()).limit(1)
    ).scalar_one()
    assert (event.action, event.outcome) == ("grant.created", "denied")
    assert event.reason == (key or "not_found")
    assert event.customer_org_id == world.gp.id


def test_a_grant_records_before_and_after(bare: World) -> None:
    grant = bare.make_grant()
    event = bare.db.execute(
        select(AuditEvent).where(AuditEvent.action == "grant.created")
    ).scalar_one()
    import json

    details = json.loads(event.details)
    assert details["before"] is None
    assert details["after"]["id"] == str(grant.id)
    assert details["after"]["permissions"] == ["chat", "control", "view"]
    # No expiry given: it ends with the agreement.
    assert grant.expires_at == bare.agreement.valid_until


def test_grant_without_an_agreement_is_refused(bare: World) -> None:
    _refused(bare, NotFound, None, agreement_id=uuid.uuid4())


def test_grant_under_a_revoked_agreement_is_refused(bare: World) -> None:
    agreements.revoke(bare.db, bare.caller(bare.gp_admin), bare.agreement.id)
    bare.db.commit()
    _refused(bare, PortalError, "grant.agreement_not_valid")


def test_grant_under_another_organisations_agreement_is_refused(bare: World) -> None:
    other = make_org(bare.db, "Tannlegen")
    other_admin = make_user(bare.db, bare.state, other, "tann-admin", admin=True, technician=False)
    bare.db.commit()
    terms.accept(bare.db, bare.caller(other_admin), "receiving")
    bare.db.commit()
    foreign = agreements.record(
        bare.db,
        bare.caller(other_admin),
        agreements.AgreementSpec(
            vendor_org_id=bare.vendor.id,
            kind="remote_support",
            reference="Tannlegens avtale",
            valid_from=bare.state.now(),
            valid_until=None,
        ),
    )
    bare.db.commit()
    _refused(bare, NotFound, None, agreement_id=foreign.id)


def test_preapproved_grant_under_an_agreement_that_does_not_allow_it(bare: World) -> None:
    _refused(bare, PortalError, "grant.preapproval_not_allowed", consent_required=False)


def test_preapproved_grant_where_the_agreement_allows_it(bare: World) -> None:
    agreement = bare.record_agreement(allows_preapproved=True, preapproved_clause=CLAUSE)
    grant = bare.make_grant(agreement, consent_required=False)
    assert grant.preapproved


def test_expiry_past_the_agreement_is_refused(bare: World) -> None:
    late = bare.agreement.valid_until + timedelta(seconds=1)
    _refused(bare, PortalError, "grant.expiry_after_agreement", expires_at=late)


def test_expiry_in_the_past_is_refused(bare: World) -> None:
    _refused(
        bare, PortalError, "grant.expiry_in_past", expires_at=bare.state.now() - timedelta(hours=1)
    )


def test_no_permission_and_control_without_view_are_refused(bare: World) -> None:
    _refused(bare, PortalError, "grant.no_permissions", permissions=frozenset())
    _refused(
        bare,
        PortalError,
        "grant.control_needs_view",
        permissions=frozenset({Permission.CONTROL}),
    )


def test_the_clipboard_without_control_is_refused(bare: World) -> None:
    # A view-only vendor must not read what the end user copies, nor fill the clipboard.
    for permissions in ({Permission.CLIPBOARD}, {Permission.VIEW, Permission.CLIPBOARD}):
        _refused(
            bare, PortalError, "grant.clipboard_needs_control", permissions=frozenset(permissions)
        )
    grant = bare.make_grant(
        permissions=frozenset({Permission.VIEW, Permission.CONTROL, Permission.CLIPBOARD})
    )
    assert grant.may_clipboard and grant.permissions >= {Permission.CLIPBOARD}


def test_naming_another_vendors_technician_is_refused(bare: World) -> None:
    rival = make_org(bare.db, "Konkurrent AS", kind=OrgKind.VENDOR, receives=False, gives=True)
    stranger = make_user(bare.db, bare.state, rival, "fremmed")
    bare.db.commit()
    _refused(
        bare,
        PortalError,
        "grant.unknown_technician",
        technician_ids=frozenset({stranger.user.id}),
    )
    _refused(
        bare,
        PortalError,
        "grant.unknown_technician",
        technician_ids=frozenset({bare.vendor_admin.user.id}),  # an admin, not a technician
    )


def test_second_live_grant_for_the_same_group_and_vendor_is_refused(bare: World) -> None:
    bare.make_grant()
    _refused(bare, Conflict, "grant.duplicate")


def test_grant_needs_the_current_receiving_terms(bare: World) -> None:
    publish_terms(bare.db, bare.state, bare.operator, "receiving")
    bare.db.commit()
    _refused(bare, PortalError, "terms.accept_receiving_first")


def test_a_group_of_another_organisation_cannot_be_granted(bare: World) -> None:
    from fjernhjelp.portal import groups

    other = make_org(bare.db, "Tannlegen")
    other_group = groups.ensure_default(bare.db, other, bare.caller(bare.operator).actor)
    bare.db.commit()
    _refused(bare, NotFound, None, group_id=other_group.id)


def test_vendor_admin_cannot_create_grants(bare: World) -> None:
    from fjernhjelp.portal.errors import NotAllowed

    with pytest.raises(NotAllowed):
        grants.create(
            bare.db,
            bare.caller(bare.vendor_admin),
            group_id=bare.group.id,
            agreement_id=bare.agreement.id,
            wanted=GrantTerms(permissions=ATTENDED),
        )


def test_narrowing_a_grant_announces_it_widening_does_not(world: World) -> None:
    caller = world.caller(world.gp_admin)
    wider = ATTENDED | {Permission.FILES}
    grants.update(world.db, caller, world.grant.id, GrantTerms(permissions=wider))
    world.db.commit()
    assert world.events == []
    grants.update(
        world.db, caller, world.grant.id, GrantTerms(permissions=frozenset({Permission.VIEW}))
    )
    world.db.commit()
    assert [e.kind for e in world.events] == [RevocationKind.GRANT_NARROWED]
    assert world.events[0].grant_ids == {world.grant.id}


def test_revoking_announces_after_commit_and_tells_the_vendor(world: World) -> None:
    grants.revoke(world.db, world.caller(world.gp_admin), world.grant.id)
    assert world.events == []  # not before the commit
    world.db.commit()
    (event,) = world.events
    assert event.kind is RevocationKind.GRANT_REVOKED
    assert event.grant_ids == {world.grant.id} and event.group_ids == {world.group.id}
    assert (event.customer_org_id, event.vendor_org_id) == (world.gp.id, world.vendor.id)
    from fjernhjelp.portal import notifications

    kinds = [n.kind for n in notifications.open_for(world.db, world.caller(world.vendor_admin))]
    assert "grant_revoked" in kinds


def test_rolled_back_revocation_announces_nothing(world: World) -> None:
    grants.revoke(world.db, world.caller(world.gp_admin), world.grant.id)
    world.db.rollback()
    world.db.commit()
    assert world.events == []


def test_received_grants_are_strictly_the_vendors_own(world: World) -> None:
    rival = make_org(world.db, "Konkurrent AS", kind=OrgKind.VENDOR, receives=False, gives=True)
    rival_admin = make_user(world.db, world.state, rival, "rival-admin", admin=True)
    world.db.commit()
    assert grants.received(world.db, world.caller(rival_admin)) == []
    assert [g.id for g in grants.received(world.db, world.caller(world.vendor_admin))] == [
        world.grant.id
    ]
    with pytest.raises(NotFound):
        grants.get_visible(world.db, world.caller(rival_admin), world.grant.id)


def test_technician_sees_only_grants_it_may_use(world: World) -> None:
    colleague = make_user(world.db, world.state, world.vendor, "kollega")
    world.db.commit()
    assert len(grants.received(world.db, world.caller(world.tech))) == 1
    grants.update(
        world.db,
        world.caller(world.gp_admin),
        world.grant.id,
        GrantTerms(permissions=ATTENDED, technician_ids=frozenset({colleague.user.id})),
    )
    world.db.commit()
    assert grants.received(world.db, world.caller(world.tech)) == []
    assert len(grants.received(world.db, world.caller(colleague))) == 1


def test_customer_lists_technicians_only_of_vendors_it_has_an_agreement_with(
    world: World,
) -> None:
    rival = make_org(world.db, "Konkurrent AS", kind=OrgKind.VENDOR, receives=False, gives=True)
    make_user(world.db, world.state, rival, "fremmed")
    world.db.commit()
    caller = world.caller(world.gp_admin)
    names = [u.username for u in grants.eligible_technicians(world.db, caller, world.vendor.id)]
    assert names == ["tekniker"]
    with pytest.raises(NotFound):
        grants.eligible_technicians(world.db, caller, rival.id)
