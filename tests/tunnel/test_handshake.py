"""The handshake state machines, driven by hand: agreement, and every refusal."""

from __future__ import annotations

import hashlib
import struct

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from fjernhjelp.tunnel.codes import RefuseCode
from fjernhjelp.tunnel.errors import (
    AgentKeyMismatch,
    AgentRefusal,
    BadAgentSignature,
    MalformedHandshake,
    Refused,
)
from fjernhjelp.tunnel.handshake import (
    AgentHandshake,
    PolicyRefusal,
    Role,
    TechnicianHandshake,
    encode_refuse,
)
from fjernhjelp.tunnel.replay import MemoryReplayCache
from fjernhjelp.tunnel.tickets import BadTicketSignature, TicketExpired, issue_ticket
from tests.tunnel.helpers import MACHINE, World


@pytest.fixture
def world() -> World:
    return World()


def technician(world: World, token: str | None = None, **kw) -> TechnicianHandshake:
    return TechnicianHandshake(
        ticket=token or world.token(),
        ephemeral=kw.pop("ephemeral", world.ephemeral),
        agent_identity=kw.pop("agent_identity", world.agent.public_key()),
    )


def agent(world: World, **kw) -> AgentHandshake:
    return AgentHandshake(
        server_key=kw.pop("server_key", world.server.public_key()),
        identity=kw.pop("identity", world.agent),
        machine_id=kw.pop("machine_id", MACHINE),
        replay_cache=kw.pop("replay_cache", world.replay),
        policy=kw.pop("policy", None),
    )


def now_of(world: World) -> float:
    return world.ticket().issued_at + 1


def refusal(world: World, hello: bytes, **kw) -> AgentRefusal:
    machine = agent(world, **kw)
    with pytest.raises(AgentRefusal) as info:
        machine.receive_hello(hello, now_of(world))
    assert machine.state == "failed" and machine.keys is None
    assert info.value.message == encode_refuse(info.value.code)
    return info.value


def test_both_sides_derive_the_same_keys(world: World) -> None:
    tech, ag = technician(world), agent(world)
    reply = ag.receive_hello(tech.hello(), now_of(world))
    keys_t = tech.receive(reply)
    keys_a = ag.keys
    assert keys_a is not None and ag.state == tech.state == "done"
    assert keys_t.role is Role.TECHNICIAN and keys_a.role is Role.AGENT
    assert keys_t.send_key == keys_a.receive_key
    assert keys_t.receive_key == keys_a.send_key
    assert keys_t.send_key != keys_t.receive_key
    assert keys_t.transcript_hash == keys_a.transcript_hash
    assert ag.ticket is not None and ag.ticket.session_id == "sess-0001"


def test_every_session_has_fresh_keys(world: World) -> None:
    first = technician(world)
    keys1 = first.receive(agent(world).receive_hello(first.hello(), now_of(world)))
    other = World(server=world.server, agent=world.agent)
    second = technician(other)
    keys2 = second.receive(agent(other).receive_hello(second.hello(), now_of(other)))
    assert keys1.send_key != keys2.send_key


def test_forged_ticket_is_refused_with_its_code(world: World) -> None:
    forged = issue_ticket(Ed25519PrivateKey.generate(), world.ticket())
    refused = refusal(world, technician(world, forged).hello())
    assert refused.code is RefuseCode.BAD_TICKET_SIGNATURE
    assert isinstance(refused.__cause__, BadTicketSignature)
    assert refused.ticket is None  # nothing of a forged ticket is trusted, even for audit


def test_expired_ticket_is_refused_and_the_audit_gets_its_fields(world: World) -> None:
    token = world.token(issued_at=1_000_000, expires_at=1_000_060)
    machine = agent(world)
    with pytest.raises(AgentRefusal) as info:
        machine.receive_hello(technician(world, token).hello(), 2_000_000)
    assert info.value.code is RefuseCode.TICKET_EXPIRED
    assert isinstance(info.value.__cause__, TicketExpired)
    assert info.value.ticket is not None and info.value.ticket.session_id == "sess-0001"


def test_ticket_for_another_machine_is_refused(world: World) -> None:
    refused = refusal(world, technician(world).hello(), machine_id="another-machine")
    assert refused.code is RefuseCode.WRONG_MACHINE


def test_technician_key_not_matching_the_ticket_is_refused(world: World) -> None:
    # A stolen ticket used with the thief's own ephemeral key.
    thief = technician(world, world.token(), ephemeral=X25519PrivateKey.generate())
    refused = refusal(world, thief.hello())
    assert refused.code is RefuseCode.KEY_MISMATCH
    assert len(world.replay) == 0  # a refused attempt does not use up the session id


def test_replayed_session_id_is_refused(world: World) -> None:
    token = world.token()
    agent(world).receive_hello(technician(world, token).hello(), now_of(world))
    refused = refusal(world, technician(world, token).hello())
    assert refused.code is RefuseCode.REPLAYED_SESSION


def test_full_replay_cache_refuses_rather_than_forgets(world: World) -> None:
    world.replay = MemoryReplayCache(capacity=1)
    agent(world).receive_hello(technician(world).hello(), now_of(world))
    other = world.token(session_id="sess-0002")
    refused = refusal(world, technician(world, other).hello())
    assert refused.code is RefuseCode.TRY_LATER


def test_replay_cache_forgets_only_dead_tickets() -> None:
    cache = MemoryReplayCache(capacity=2, leeway=60)
    assert cache.remember("a", expires_at=100, now=50)
    assert not cache.remember("a", expires_at=100, now=159)
    assert cache.remember("b", expires_at=200, now=159)
    assert cache.remember("c", expires_at=300, now=161)  # "a" is dead: its slot is reused
    assert len(cache) == 2


def test_policy_can_refuse_a_valid_ticket(world: World) -> None:
    def no_display(ticket) -> None:
        if ticket.consent_required:
            raise PolicyRefusal("consent required but nobody is logged in")

    refused = refusal(world, technician(world).hello(), policy=no_display)
    assert refused.code is RefuseCode.POLICY
    assert refused.ticket is not None


@pytest.mark.parametrize(
    ("mangle", "code"),
    [
        (lambda h: h[:40], RefuseCode.MALFORMED_HELLO),
        (lambda h: b"XXXX" + h[4:], RefuseCode.MALFORMED_HELLO),
        (lambda h: h[:4] + b"\x02" + h[5:], RefuseCode.MALFORMED_HELLO),
        (lambda h: h[:5] + b"\x02" + h[6:], RefuseCode.UNSUPPORTED_VERSION),
        (lambda h: h + b"x", RefuseCode.MALFORMED_HELLO),
        (lambda h: h[:-1], RefuseCode.MALFORMED_HELLO),
        (lambda h: h[:70] + struct.pack(">H", 0) + h[72:], RefuseCode.MALFORMED_HELLO),
        (lambda h: h[:6] + bytes(32) + h[38:], RefuseCode.KEY_MISMATCH),
        (lambda h: b"", RefuseCode.MALFORMED_HELLO),
    ],
)
def test_malformed_hello_is_refused(world: World, mangle, code: RefuseCode) -> None:
    hello = technician(world).hello()
    assert refusal(world, mangle(hello)).code is code


def test_low_order_technician_key_is_refused_even_with_a_matching_ticket(world: World) -> None:
    # The server hashed an all-zero "public key" into the ticket: the shared secret would
    # be zero, so the agent refuses instead of deriving keys anyone could compute.
    zero = bytes(32)
    token = world.token(technician_key_sha256=hashlib.sha256(zero).digest())
    hello = technician(world, token).hello()
    hello = hello[:6] + zero + hello[38:]
    assert refusal(world, hello).code is RefuseCode.MALFORMED_HELLO


def test_technician_reads_a_refusal(world: World) -> None:
    tech = technician(world)
    tech.hello()
    with pytest.raises(Refused) as info:
        tech.receive(encode_refuse(RefuseCode.TICKET_EXPIRED))
    assert info.value.code == RefuseCode.TICKET_EXPIRED and info.value.name == "ticket-expired"
    assert tech.keys is None and tech.state == "failed"


def test_unknown_refuse_code_is_still_a_refusal(world: World) -> None:
    tech = technician(world)
    tech.hello()
    with pytest.raises(Refused) as info:
        tech.receive(b"FJHT\x03\x01\x01\x00")
    assert info.value.name == "code-256"


def test_agent_with_another_identity_is_refused(world: World) -> None:
    # The relay (or a server that lists one key and routes to another machine) answers
    # with an agent whose identity is not the listed one.
    impostor = agent(world, identity=Ed25519PrivateKey.generate())
    tech = technician(world)
    reply = impostor.receive_hello(tech.hello(), now_of(world))
    with pytest.raises(AgentKeyMismatch):
        tech.receive(reply)
    assert tech.keys is None


def test_agent_signature_by_a_wrong_key_is_refused(world: World) -> None:
    # The reply names the listed identity key but was signed by another key.
    impostor_key = Ed25519PrivateKey.generate()
    impostor = agent(world, identity=impostor_key)
    tech = technician(world)
    reply = impostor.receive_hello(tech.hello(), now_of(world))
    listed = world.agent.public_key().public_bytes_raw()
    forged = reply[:70] + listed + reply[102:]
    with pytest.raises(BadAgentSignature):
        tech.receive(forged)


@pytest.mark.parametrize("position", [6, 37, 38, 69, 102, 165])
def test_any_changed_byte_of_the_agent_reply_is_refused(world: World, position: int) -> None:
    tech = technician(world)
    reply = bytearray(agent(world).receive_hello(tech.hello(), now_of(world)))
    reply[position] ^= 0x01
    with pytest.raises((BadAgentSignature, MalformedHandshake)):
        tech.receive(bytes(reply))


def test_reply_to_another_hello_is_refused(world: World) -> None:
    # A relay that answers this HELLO with the agent's reply to an earlier one.
    earlier = technician(world)
    old_reply = agent(world).receive_hello(earlier.hello(), now_of(world))
    tech = technician(world, world.token(session_id="sess-0002"))
    tech.hello()
    with pytest.raises(BadAgentSignature):
        tech.receive(old_reply)


@pytest.mark.parametrize(
    "reply",
    [
        b"",
        b"FJHT",
        b"FJHT\x03\x01\x00",  # REFUSE cut short
        b"FJHT\x02\x01" + bytes(100),
        b"FJHT\x07\x01" + bytes(160),
        b"HTTP/1.1 200 OK\r\n",
    ],
)
def test_malformed_reply_is_refused(world: World, reply: bytes) -> None:
    tech = technician(world)
    tech.hello()
    with pytest.raises(MalformedHandshake):
        tech.receive(reply)


def test_agent_reply_with_another_version_is_refused(world: World) -> None:
    tech = technician(world)
    reply = agent(world).receive_hello(tech.hello(), now_of(world))
    with pytest.raises(MalformedHandshake, match="version"):
        tech.receive(reply[:5] + b"\x02" + reply[6:])


def test_state_machines_refuse_calls_out_of_order(world: World) -> None:
    tech = technician(world)
    with pytest.raises(RuntimeError):
        tech.receive(b"")
    hello = tech.hello()
    with pytest.raises(RuntimeError):
        tech.hello()
    ag = agent(world)
    ag.receive_hello(hello, now_of(world))
    with pytest.raises(RuntimeError):
        ag.receive_hello(hello, now_of(world))
