"""The expiry sweep: each expiry announced and audited once; idle accounts deactivated."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from fjernhjelp.audit.models import AuditEvent
from fjernhjelp.auth.models import LoginSession, UserStatus
from fjernhjelp.portal import members, notifications, sweep
from fjernhjelp.portal.models import AgreementStatus, GrantStatus
from fjernhjelp.portal.revocations import RevocationKind
from tests.portal.world import World

YEAR = timedelta(days=365)


def _run(world: World) -> sweep.SweepReport:
    report = sweep.run(world.db, world.state.now(), inactive_after=timedelta(days=400))
    world.db.commit()
    return report


def _count(world: World, action: str) -> int:
    return world.db.execute(
        select(func.count()).select_from(AuditEvent).where(AuditEvent.action == action)
    ).scalar_one()


def test_grant_and_agreement_expiry_is_announced_and_audited_once(world: World, clock) -> None:
    assert _run(world).grants_expired == 0
    clock.advance(days=366)
    report = _run(world)
    assert (report.grants_expired, report.agreements_expired) == (1, 1)
    assert [e.kind for e in world.events] == [
        RevocationKind.GRANT_EXPIRED,
        RevocationKind.AGREEMENT_EXPIRED,
    ]
    assert world.events[1].grant_ids == {world.grant.id}
    assert world.grant.status == GrantStatus.EXPIRED
    assert world.agreement.status == AgreementStatus.EXPIRED
    again = _run(world)
    assert (again.grants_expired, again.agreements_expired) == (0, 0)
    assert len(world.events) == 2
    assert _count(world, "grant.expired") == 1 and _count(world, "agreement.expired") == 1
    vendor_notes = notifications.open_for(world.db, world.caller(world.vendor_admin))
    assert {"grant_expired", "agreement_expired"} <= {n.kind for n in vendor_notes}


def test_idle_accounts_are_deactivated_and_admins_told(world: World, clock, client) -> None:
    from tests.server.test_pages_login import web_login

    web_login(client, world.tech)
    clock.advance(days=401)
    report = _run(world)
    # Everyone in the world is idle by now: every account that could log in.
    assert report.users_deactivated == 4
    world.db.expire_all()
    assert world.tech.user.status == UserStatus.DISABLED
    assert (
        world.db.execute(
            select(func.count())
            .select_from(LoginSession)
            .where(LoginSession.user_id == world.tech.user.id)
        ).scalar_one()
        == 0
    )
    event = (
        world.db.execute(
            select(AuditEvent).where(
                AuditEvent.action == "account.deactivated",
                AuditEvent.actor_user_id.is_(None),
                AuditEvent.customer_org_id == world.vendor.id,
            )
        )
        .scalars()
        .first()
    )
    assert event.reason == "inactive" and event.actor_name == "system"
    kinds = [e.kind for e in world.events]
    assert kinds.count(RevocationKind.USER_DEACTIVATED) == 4
    notes = notifications.open_for(world.db, world.caller(world.vendor_admin))
    users = {
        notifications.params_of(n)["username"]
        for n in notes
        if n.kind == "user_deactivated_inactive"
    }
    assert {"tekniker", "vendor-admin"} <= users


def test_a_reactivated_account_gets_a_fresh_period(world: World, clock) -> None:
    clock.advance(days=401)
    _run(world)
    world.db.expire_all()
    members.reactivate(world.db, world.caller(world.operator), world.vendor_admin.user.id)
    world.db.commit()
    _run(world)
    world.db.expire_all()
    assert world.vendor_admin.user.status == UserStatus.ACTIVE


def test_recent_login_keeps_an_account(world: World, clock, client) -> None:
    from tests.server.test_pages_login import web_login

    clock.advance(days=300)
    web_login(client, world.tech)
    clock.advance(days=101)
    _run(world)
    world.db.expire_all()
    assert world.tech.user.status == UserStatus.ACTIVE
    assert world.gp_admin.user.status == UserStatus.DISABLED


def test_an_invitation_never_used_is_deactivated_too(world: World, clock) -> None:
    invitation = members.invite(
        world.db,
        world.caller(world.vendor_admin),
        username="aldri-brukt",
        email="a@example.no",
        display_name="Aldri Brukt",
        technician=True,
        link_lifetime=timedelta(hours=72),
    )
    world.db.commit()
    clock.advance(days=401)
    _run(world)
    world.db.expire_all()
    assert invitation.user.status == UserStatus.DISABLED
