"""Support sessions in the history (marked Support), and the Support events in both
organisations' audit logs; each from the side that must see nothing too."""

from __future__ import annotations

import re

import pytest

from fjernhjelp.portal import terms
from fjernhjelp.portal.models import OrgKind
from fjernhjelp.remote import history, support
from fjernhjelp.remote.models import SessionStatus
from tests.helpers import Account, make_org, make_user
from tests.portal.web import Api, browser
from tests.portal.world import World
from tests.support.kit import config, make_code, row


def _joined(world: World) -> support.CreatedSupport:
    created = make_code(world)
    support.join(world.db, config(world.state), created.code, "198.51.100.7", world.state.now())
    world.db.commit()
    return created


def _strangers(world: World) -> tuple[Account, Account, Account]:
    """Another customer's admin, another vendor's technician and that vendor's admin."""
    other_gp = make_org(world.db, "Legekontoret Nabobyen")
    other_admin = make_user(
        world.db, world.state, other_gp, "nabo-admin", admin=True, technician=False
    )
    rival = make_org(world.db, "Konkurrent AS", kind=OrgKind.VENDOR, receives=False, gives=True)
    rival_tech = make_user(world.db, world.state, rival, "rival")
    rival_admin = make_user(
        world.db, world.state, rival, "rival-admin", admin=True, technician=False
    )
    world.db.commit()
    terms.accept(world.db, world.caller(rival_admin), "giving")
    world.db.commit()
    return other_admin, rival_tech, rival_admin


def _ids(world: World, account: Account) -> list[str]:
    page = history.support_sessions_of(world.db, world.caller(account))
    return [str(s.id) for s in page.sessions]


def test_support_sessions_are_in_the_history_marked_support(client, world: World) -> None:
    joined = _joined(world)
    finished = row(world.db, joined.session.id)
    finished.status, finished.end_reason = SessionStatus.ENDED, "technician_closed"
    finished.started_at, finished.ended_at = world.state.now(), world.state.now()
    finished.bytes_from_technician, finished.bytes_from_agent = 2048, 4096
    world.db.commit()
    make_code(world)  # a code nobody entered: waits in the console, not in the history
    want = [str(joined.session.id)]
    assert _ids(world, world.gp_admin) == want
    assert _ids(world, world.tech) == want
    assert _ids(world, world.vendor_admin) == want
    [record] = history.support_sessions_of(world.db, world.caller(world.gp_admin)).sessions
    assert record.is_support and record.customer == "Legekontoret Fjordbyen"
    assert record.vendor == "Journalleverandør AS" and record.ended_by == "technician"

    with browser(client, world.gp_admin) as admin:
        assert 'href="/portal/support-sessions"' in admin.get("/portal/machines").text
        page = admin.get("/portal/support-sessions")
        assert page.status_code == 200
        rows = re.findall(r'data-session-id="([^"]+)" data-kind="support"', page.text)
        assert rows == want
        assert "Support" in page.text and "Tekniker" in page.text
    with browser(client, world.tech) as tech:
        assert 'href="/portal/support-sessions"' in tech.get("/console").text
        page = tech.get("/portal/support-sessions")
        assert re.findall(r'data-session-id="([^"]+)"', page.text) == want


def test_another_customer_and_another_vendor_see_none_of_them(client, world: World) -> None:
    _joined(world)
    other_admin, rival_tech, rival_admin = _strangers(world)
    for stranger in (other_admin, rival_tech, rival_admin):
        assert _ids(world, stranger) == []
        with browser(client, stranger) as page:
            r = page.get("/portal/support-sessions")
            assert r.status_code == 200
            assert 'data-testid="sessions-empty"' in r.text and "data-session-id" not in r.text


def test_a_colleague_technician_sees_only_their_own(client, world: World) -> None:
    _joined(world)
    colleague = make_user(world.db, world.state, world.vendor, "kollega")
    world.db.commit()
    assert _ids(world, colleague) == []


@pytest.mark.parametrize("reason", ["right", "wrong", "expired"])
def test_code_events_are_read_by_vendor_and_customer_and_nobody_else(
    client, world: World, reason: str
) -> None:
    created = make_code(world)
    now = world.state.now()
    if reason == "right":
        action = "support.code_attempt"
        support.join(world.db, config(world.state), created.code, "198.51.100.7", now)
    elif reason == "wrong":
        # A used code: a real session's wrong attempt, which its two organisations read.
        action = "support.code_attempt"
        support.join(world.db, config(world.state), created.code, "198.51.100.7", now)
        world.db.commit()
        with pytest.raises(support.CodeInvalid):
            support.join(world.db, config(world.state), created.code, "198.51.100.8", now)
    else:
        action = "support.code_expired"
        later = created.expires_at
        assert support.expire_codes(world.db, later) == 1
    world.db.commit()
    other_admin, _rival_tech, rival_admin = _strangers(world)

    def seen(account: Account) -> list[str]:
        r = Api(client, account).get("/audit/events", params={"action": action})
        assert r.status_code == 200, r.text
        return [
            e["reason"] or "ok"
            for e in r.json()["events"]
            if e["details"].get("session") == str(created.session.id)
        ]

    vendor_sees, customer_sees = seen(world.vendor_admin), seen(world.gp_admin)
    assert vendor_sees == customer_sees and vendor_sees != []
    if reason == "wrong":
        assert "used" in vendor_sees
    assert seen(other_admin) == [] and seen(rival_admin) == []
