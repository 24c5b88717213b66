"""Support sessions run out on the server's clock: a code nobody entered in time, and a
session the end user joined whose tunnel the technician never asked for within a code's
lifetime of the join. The server's housekeeping sweep ends them with a reason, audits
it, and tells each joined client (a cut on its control link), so the client exits; the
token of an expired session opens nothing any more."""

from __future__ import annotations

import os
import uuid
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from fjernhjelp.caller import Caller
from fjernhjelp.control import statements
from fjernhjelp.refusals import SessionRefused
from fjernhjelp.remote import support, support_tunnel
from fjernhjelp.remote.models import SessionStatus
from fjernhjelp.remote.sessions import TICKET_LIFETIME
from fjernhjelp.server.housekeeping import support_expiry_job
from tests.asyncrun import run_async
from tests.portal.world import World
from tests.support.kit import config, details, events, make_code, row

ADDRESS = "203.0.113.5"


def _joined(world: World) -> tuple[uuid.UUID, str, Ed25519PrivateKey]:
    created = make_code(world)
    joined = support.join(world.db, config(world.state), created.code, ADDRESS, world.state.now())
    key = Ed25519PrivateKey.generate()
    _login(world, joined.session_id, joined.client_token, key)
    return joined.session_id, joined.client_token, key


def _login(world: World, session_id: uuid.UUID, token: str, key: Ed25519PrivateKey) -> None:
    nonce = os.urandom(statements.NONCE_BYTES)
    public = key.public_key().public_bytes_raw()
    try:
        support_tunnel.client_login(
            world.db,
            session_id=session_id,
            token=token,
            public_key=public,
            nonce=nonce,
            signature=key.sign(
                statements.support_client_proof_statement(nonce, session_id, public)
            ),
            now=world.state.now(),
            source_address=ADDRESS,
            client_version="test",
        )
    finally:
        world.db.commit()


def _sweep(world: World, minutes_later: float) -> list[tuple[uuid.UUID, str]]:
    """The housekeeping job as the server runs it, ``minutes_later`` from now; the cuts
    it sends to clients."""
    told: list[tuple[uuid.UUID, str]] = []

    async def cut(session_id: uuid.UUID, why: str) -> None:
        told.append((session_id, why))

    job = support_expiry_job(world.state, cut)
    follow_up = job(world.db, world.state.now() + timedelta(minutes=minutes_later))
    if follow_up is not None:
        run_async(follow_up())
    return told


def test_a_joined_session_whose_tunnel_never_came_ends_on_the_server(world: World) -> None:
    lifetime = world.state.settings.support_code_minutes
    session_id, _, _ = _joined(world)

    # Within a code's lifetime of the join nothing happens.
    assert _sweep(world, lifetime - 1) == []
    assert row(world.db, session_id).status == SessionStatus.JOINED

    assert _sweep(world, lifetime + 1) == [(session_id, "joined_expired")]
    ended = row(world.db, session_id)
    assert ended.status == SessionStatus.ENDED and ended.end_reason == "joined_expired"
    assert support.state_of(ended, world.state.now()) == support.State.EXPIRED
    [expired] = events(world.db, "support.session_expired")
    assert details(expired)["session"] == str(session_id)
    assert expired.actor_name == "system" and expired.customer_org_id == world.gp.id
    assert expired.vendor_org_id == world.vendor.id
    [over] = events(world.db, "session.ended")
    assert over.reason == "joined_expired" and details(over)["support"] is True
    # Once is enough: the next sweep finds nothing to end or tell.
    assert _sweep(world, lifetime + 2) == []
    assert len(events(world.db, "support.session_expired")) == 1


def test_a_waiting_code_past_its_time_ends_on_the_server(world: World) -> None:
    created = make_code(world)
    lifetime = world.state.settings.support_code_minutes
    # Nobody to tell: no client has logged in for a code nobody entered.
    assert _sweep(world, lifetime + 1) == []
    ended = row(world.db, created.session.id)
    assert ended.status == SessionStatus.ENDED and ended.end_reason == "code_expired"
    [expired] = events(world.db, "support.code_expired")
    assert details(expired)["session"] == str(created.session.id)


def test_an_expired_session_opens_nothing_for_its_client_or_technician(world: World) -> None:
    session_id, token, key = _joined(world)
    _sweep(world, world.state.settings.support_code_minutes + 1)

    # The client's token (and key) no longer log in: refused and audited.
    with pytest.raises(support_tunnel.ClientLoginRefused) as refused:
        _login(world, session_id, token, key)
    assert refused.value.reason == "session_ended"
    denied = events(world.db, "support.client_login", outcome="denied")
    assert [e.reason for e in denied] == ["session_ended"]
    # The technician gets no tunnel for it: refused and audited.
    with pytest.raises(SessionRefused) as no_tunnel:
        support_tunnel.request_tunnel(
            world.db,
            world.caller(world.tech),
            session_id,
            technician_key=X25519PrivateKey.generate().public_key().public_bytes_raw(),
            signing_key=world.state.keys.signing,
            node_id="node-test",
            client_online=True,
            ticket_lifetime=TICKET_LIFETIME,
        )
    world.db.commit()
    assert no_tunnel.value.reason == "support_not_ready"
    [asked] = events(world.db, "support.tunnel_requested", outcome="denied")
    assert asked.reason == "support_not_ready"
    ended = row(world.db, session_id)
    assert ended.status == SessionStatus.ENDED and ended.technician_token_hash is None


def test_a_session_whose_tunnel_was_asked_for_is_not_the_sweeps(world: World) -> None:
    session_id, _, _ = _joined(world)
    support_tunnel.request_tunnel(
        world.db,
        Caller.of_person(world.tech.user, world.state.now(), "192.0.2.10"),
        session_id,
        technician_key=X25519PrivateKey.generate().public_key().public_bytes_raw(),
        signing_key=world.state.keys.signing,
        node_id="node-test",
        client_online=True,
        ticket_lifetime=TICKET_LIFETIME,
    )
    world.db.commit()
    assert _sweep(world, world.state.settings.support_code_minutes + 1) == []
    assert row(world.db, session_id).status == SessionStatus.REQUESTED
