"""The Support client's login and the technician's tunnel, from the attacked side: a token
spent on another key, a wrong token, a dead session, a forged proof; a tunnel asked for too
early, by another vendor's technician or a colleague, twice, or while the client is away.
And the ticket that is issued: for the client's subject only, with Support's permissions."""

from __future__ import annotations

import os
import uuid

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from fjernhjelp.caller import Caller
from fjernhjelp.control import statements
from fjernhjelp.portal.models import OrgKind
from fjernhjelp.portal.revocations import Revocation, RevocationKind
from fjernhjelp.refusals import NotFound, SessionRefused
from fjernhjelp.remote import support, support_tunnel
from fjernhjelp.remote.models import SessionStatus
from fjernhjelp.remote.sessions import TICKET_LIFETIME, IssuedSession
from fjernhjelp.server.runtime import AccessRuntime
from fjernhjelp.tunnel.tickets import Permission, WrongMachine, verify_ticket
from tests.asyncrun import run_async
from tests.helpers import make_org, make_user
from tests.portal.world import World
from tests.support.kit import config, details, events, make_code, row

ADDRESS = "203.0.113.5"


def _joined(world: World) -> support.Joined:
    created = make_code(world)
    joined = support.join(world.db, config(world.state), created.code, ADDRESS, world.state.now())
    world.db.commit()
    return joined


def _login(
    world: World,
    joined: support.Joined,
    key: Ed25519PrivateKey,
    *,
    token: str | None = None,
    signer: Ed25519PrivateKey | None = None,
) -> None:
    nonce = os.urandom(statements.NONCE_BYTES)
    public = key.public_key().public_bytes_raw()
    proof = (signer or key).sign(
        statements.support_client_proof_statement(nonce, joined.session_id, public)
    )
    try:
        support_tunnel.client_login(
            world.db,
            session_id=joined.session_id,
            token=token or joined.client_token,
            public_key=public,
            nonce=nonce,
            signature=proof,
            now=world.state.now(),
            source_address=ADDRESS,
            client_version="test",
        )
    except support_tunnel.ClientLoginRefused as exc:
        assert exc.recorded
        world.db.commit()
        raise
    world.db.commit()


def _tunnel(
    world: World, support_id: uuid.UUID, caller: Caller | None = None, *, online: bool = True
) -> IssuedSession:
    try:
        issued = support_tunnel.request_tunnel(
            world.db,
            caller or world.caller(world.tech),
            support_id,
            technician_key=X25519PrivateKey.generate().public_key().public_bytes_raw(),
            signing_key=world.state.keys.signing,
            node_id="test-node",
            client_online=online,
            ticket_lifetime=TICKET_LIFETIME,
        )
    except (SessionRefused, NotFound):
        world.db.commit()
        raise
    world.db.commit()
    return issued


def test_the_token_is_spent_on_the_first_key(world: World) -> None:
    joined = _joined(world)
    key = Ed25519PrivateKey.generate()
    _login(world, joined, key)
    started = events(world.db, "support.client_started")[-1]
    assert started.actor_name == "end-user" and started.source_address == ADDRESS
    assert details(started)["session"] == str(joined.session_id)
    assert row(world.db, joined.session_id).client_public_key == (
        key.public_key().public_bytes_raw()
    )
    # The same key again is the client reconnecting.
    _login(world, joined, key)
    assert events(world.db, "support.client_reconnected")
    # Whoever else got hold of the token gets nothing with their own key.
    with pytest.raises(support_tunnel.ClientLoginRefused) as refused:
        _login(world, joined, Ed25519PrivateKey.generate())
    assert refused.value.reason == "client_key_mismatch"
    denied = events(world.db, "support.client_login", outcome="denied")[-1]
    assert denied.reason == "client_key_mismatch" and denied.customer_org_id == world.gp.id
    assert row(world.db, joined.session_id).client_public_key == (
        key.public_key().public_bytes_raw()
    )


@pytest.mark.parametrize("attack", ["wrong_token", "forged_proof", "session_ended"])
def test_a_client_login_without_the_right_to_it_is_refused(world: World, attack: str) -> None:
    joined = _joined(world)
    key = Ed25519PrivateKey.generate()
    expected = {
        "wrong_token": "bad_token",
        "forged_proof": "bad_signature",
        "session_ended": "session_ended",
    }[attack]
    if attack == "session_ended":
        support.cancel(world.db, world.caller(world.tech), joined.session_id)
        world.db.commit()
    with pytest.raises(support_tunnel.ClientLoginRefused) as refused:
        _login(
            world,
            joined,
            key,
            token="x" * 43 if attack == "wrong_token" else None,
            signer=Ed25519PrivateKey.generate() if attack == "forged_proof" else None,
        )
    assert refused.value.reason == expected
    assert events(world.db, "support.client_login", outcome="denied")[-1].reason == expected
    assert events(world.db, "support.client_started") == []
    assert row(world.db, joined.session_id).client_public_key is None


def test_the_technician_gets_a_ticket_for_the_client_and_nothing_else(world: World) -> None:
    joined = _joined(world)
    # Before the client has logged in there is nobody to open a tunnel to.
    with pytest.raises(SessionRefused) as early:
        _tunnel(world, joined.session_id)
    assert early.value.reason == "support_not_ready"
    key = Ed25519PrivateKey.generate()
    _login(world, joined, key)
    with pytest.raises(SessionRefused) as away:
        _tunnel(world, joined.session_id, online=False)
    assert away.value.reason == "client_offline"

    issued = _tunnel(world, joined.session_id)
    server = world.state.keys.signing.public_key()
    now = world.state.now().timestamp()
    ticket = verify_ticket(server, issued.ticket, now, f"support:{joined.session_id}")
    assert ticket.session_id == str(joined.session_id)
    assert ticket.consent_required is True and ticket.grant_id == ""
    assert ticket.permissions == {
        Permission.VIEW,
        Permission.CONTROL,
        Permission.CHAT,
        Permission.FILES,
        Permission.TERMINAL,
    }
    assert issued.agent_identity_key == key.public_key().public_bytes_raw()
    # Not a ticket any Access agent would take: it names no machine.
    with pytest.raises(WrongMachine):
        verify_ticket(server, issued.ticket, now, str(joined.session_id))
    assert row(world.db, joined.session_id).status == SessionStatus.REQUESTED
    assert events(world.db, "support.tunnel_requested", outcome="success")
    # One tunnel per Support session: each new one would be a new set of words.
    with pytest.raises(SessionRefused) as again:
        _tunnel(world, joined.session_id)
    assert again.value.reason == "support_not_ready"


def test_only_the_technician_who_made_it_may_open_its_tunnel(world: World) -> None:
    joined = _joined(world)
    _login(world, joined, Ed25519PrivateKey.generate())
    rival = make_org(world.db, "Konkurrent AS", kind=OrgKind.VENDOR, receives=False, gives=True)
    intruders = (
        make_user(world.db, world.state, rival, "rival"),
        make_user(world.db, world.state, world.vendor, "kollega"),
    )
    world.db.commit()
    for intruder in intruders:
        caller = Caller.of_person(intruder.user, world.state.now(), "192.0.2.99")
        with pytest.raises(NotFound):
            _tunnel(world, joined.session_id, caller)
        refused = events(world.db, "support.tunnel_requested", outcome="denied")[-1]
        assert refused.actor_name == intruder.username and refused.reason == "not_found"
    assert row(world.db, joined.session_id).status == SessionStatus.JOINED
    assert row(world.db, joined.session_id).technician_token_hash is None


def test_a_revocation_ends_a_joined_support_session_and_cuts_its_client(world: World) -> None:
    joined = _joined(world)
    _login(world, joined, Ed25519PrivateKey.generate())
    runtime = AccessRuntime(world.state)
    cuts: list[dict[str, object]] = []

    async def broadcast(message: dict[str, object]) -> None:
        cuts.append(message)

    runtime.cluster.broadcast = broadcast  # type: ignore[method-assign]
    event = Revocation(
        RevocationKind.USER_SUSPENDED,
        world.state.now(),
        user_id=world.tech.user.id,
        vendor_org_id=world.vendor.id,
    )
    assert run_async(runtime.apply(event)) == [joined.session_id]
    # The client's link is keyed by its session: the cut names it as the "machine".
    assert cuts == [
        {
            "type": "cut",
            "session_id": str(joined.session_id),
            "machine_id": str(joined.session_id),
            "reason": "user_suspended",
        }
    ]
    ended = row(world.db, joined.session_id)
    assert ended.status == SessionStatus.ENDED and ended.end_reason == "cut:user_suspended"
