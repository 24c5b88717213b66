"""The revocation bus: typed events, published once committed, matched to sessions."""

from __future__ import annotations

import asyncio
import threading
import uuid
from datetime import UTC, datetime

import pytest

from fjernhjelp.portal import members, organisations, policy
from fjernhjelp.portal.policy import Policy
from fjernhjelp.portal.revocations import (
    LiveSession,
    Revocation,
    RevocationBus,
    RevocationKind,
    announce,
    pending,
)
from tests.portal.world import World

NOW = datetime(2026, 1, 1, tzinfo=UTC)
GRANT, GROUP, CUSTOMER, VENDOR, TECH = (uuid.uuid4() for _ in range(5))
SESSION = LiveSession(GRANT, GROUP, CUSTOMER, VENDOR, TECH)
ELSEWHERE = uuid.uuid4()


@pytest.mark.parametrize(
    ("event", "hits"),
    [
        (Revocation(RevocationKind.GRANT_REVOKED, NOW, grant_ids=frozenset({GRANT})), True),
        (Revocation(RevocationKind.GRANT_REVOKED, NOW, grant_ids=frozenset({ELSEWHERE})), False),
        (Revocation(RevocationKind.AGREEMENT_EXPIRED, NOW, grant_ids=frozenset({GRANT})), True),
        (Revocation(RevocationKind.USER_SUSPENDED, NOW, user_id=TECH), True),
        (Revocation(RevocationKind.USER_DEACTIVATED, NOW, user_id=ELSEWHERE), False),
        (Revocation(RevocationKind.ORGANISATION_SUSPENDED, NOW, customer_org_id=CUSTOMER), True),
        (Revocation(RevocationKind.ORGANISATION_SUSPENDED, NOW, vendor_org_id=VENDOR), True),
        (Revocation(RevocationKind.ORGANISATION_SUSPENDED, NOW, vendor_org_id=ELSEWHERE), False),
        (Revocation(RevocationKind.ACCESS_DISABLED, NOW, customer_org_id=CUSTOMER), True),
        (Revocation(RevocationKind.STOPPED_GIVING, NOW, vendor_org_id=VENDOR), True),
        (Revocation(RevocationKind.STOPPED_RECEIVING, NOW, customer_org_id=ELSEWHERE), False),
    ],
)
def test_affects_matches_the_right_sessions(event: Revocation, hits: bool) -> None:
    assert event.affects(SESSION) is hits


def test_access_disabled_leaves_support_sessions_running() -> None:
    support = LiveSession(GRANT, GROUP, CUSTOMER, VENDOR, TECH, support=True)
    event = Revocation(RevocationKind.ACCESS_DISABLED, NOW, customer_org_id=CUSTOMER)
    assert not event.affects(support)


def test_a_failing_subscriber_does_not_stop_the_others() -> None:
    bus = RevocationBus()
    seen: list[Revocation] = []

    def broken(_: Revocation) -> None:
        raise RuntimeError("subscriber bug")

    bus.subscribe(broken)
    unsubscribe = bus.subscribe(seen.append)
    event = Revocation(RevocationKind.USER_SUSPENDED, NOW, user_id=TECH)
    bus.publish(event)
    assert seen == [event]
    unsubscribe()
    bus.publish(event)
    assert seen == [event] and bus.subscriber_count == 1


def test_asyncio_consumers_get_events_published_from_another_thread() -> None:
    async def scenario() -> Revocation:
        bus = RevocationBus()
        queue, _ = bus.subscribe_queue(asyncio.get_running_loop())
        event = Revocation(RevocationKind.GRANT_EXPIRED, NOW, grant_ids=frozenset({GRANT}))
        threading.Thread(target=bus.publish, args=(event,)).start()
        return await asyncio.wait_for(queue.get(), timeout=10)

    # A loop of its own in a thread of its own: in a pytest worker that already drove
    # Playwright, the main thread counts as inside a running loop.
    received: list[Revocation] = []
    runner = threading.Thread(target=lambda: received.append(asyncio.run(scenario())))
    runner.start()
    runner.join(timeout=30)
    assert [e.kind for e in received] == [RevocationKind.GRANT_EXPIRED]


def test_published_only_when_the_transaction_commits(world: World) -> None:
    event = Revocation(RevocationKind.USER_SUSPENDED, NOW, user_id=TECH)
    announce(world.db, event)
    assert pending(world.db) == [event] and world.events == []
    world.db.rollback()
    assert pending(world.db) == [] and world.events == []
    announce(world.db, event)
    world.db.commit()
    assert world.events == [event]


def test_suspending_a_user_ends_their_sessions_and_announces_it(world: World, client) -> None:
    from tests.server.test_pages_login import web_login

    web_login(client, world.tech)
    assert client.get("/console").status_code == 200
    members.suspend(world.db, world.caller(world.operator), world.tech.user.id)
    world.db.commit()
    assert [(e.kind, e.user_id) for e in world.events] == [
        (RevocationKind.USER_SUSPENDED, world.tech.user.id)
    ]
    r = client.get("/console")
    assert r.status_code == 303 and r.headers["location"].startswith("/login")


def test_suspending_an_organisation_and_turning_off_access(world: World) -> None:
    organisations.suspend(world.db, world.caller(world.operator), world.vendor.id)
    world.db.commit()
    (event,) = world.events
    assert event.kind is RevocationKind.ORGANISATION_SUSPENDED
    assert (event.customer_org_id, event.vendor_org_id) == (None, world.vendor.id)
    world.events.clear()
    policy.set_policy(
        world.db, world.caller(world.operator), world.gp.id, Policy(False, True, False)
    )
    world.db.commit()
    assert [(e.kind, e.customer_org_id) for e in world.events] == [
        (RevocationKind.ACCESS_DISABLED, world.gp.id)
    ]
