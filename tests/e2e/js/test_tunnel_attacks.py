"""A hostile relay and a false agent, seen from the browser: every change to a record
closes the tunnel and says why; an agent signing with a key other than the listed one is
refused before any record, let alone a stream, is sent; REFUSE codes reach the page."""

from __future__ import annotations

import time

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fjernhjelp.server.relay import Role
from fjernhjelp.tunnel import CloseCode, HandshakeError
from fjernhjelp.tunnel.handshake import raw_public
from tests.e2e.js.agent import AgentSide, echo
from tests.e2e.js.harness import Tamper
from tests.e2e.js.sessions import connect_page

pytestmark = [pytest.mark.browser, pytest.mark.timeout(60)]

NOW = int(time.time())
CONTROL = [{"type": "consent", "state": "asked"}, {"n": 2}, {"n": 3}, {"n": 4}]


def flip(target: int) -> Tamper:
    def tamper(index: int, message: bytes) -> list[bytes]:
        if index != target:
            return [message]
        changed = bytearray(message)
        changed[len(changed) // 2] ^= 0x40
        return [bytes(changed)]

    return tamper


def replay(target: int) -> Tamper:
    return lambda index, message: [message, message] if index == target else [message]


def swap(first: int) -> Tamper:
    held: list[bytes] = []

    def tamper(index: int, message: bytes) -> list[bytes]:
        if index == first:
            held.append(message)
            return []
        if index == first + 1:
            return [message, *held]
        return [message]

    return tamper


def drop(target: int) -> Tamper:
    return lambda index, message: [] if index == target else [message]


def truncate(target: int) -> Tamper:
    return lambda index, message: [message[:-1]] if index == target else [message]


@pytest.mark.parametrize(
    "tamper",
    [flip(3), replay(2), swap(2), drop(2), truncate(3), flip(1)],
    ids=["flipped-byte", "replayed", "reordered", "dropped", "truncated", "flipped-first"],
)
def test_a_changed_record_closes_the_tunnel_from_the_page(tunnel_page, harness, tamper) -> None:
    # Index 0 is AGENT_HELLO; 1 the PONG to our key confirmation; 2.. control messages.
    agent = AgentSide(harness, {"echo": echo}, allowed={"echo"}, control_messages=CONTROL)
    harness.tampers[agent.session_id] = tamper
    assert connect_page(tunnel_page, agent) == "open"
    why = tunnel_page.evaluate("window.fjh.ended()")
    assert (why["name"], why["slug"], why["by"]) == ("TunnelClosed", "record-error", "local")
    # The page said so to the agent before hanging up: its own direction still worked.
    closed = harness.run(agent.wait_closed())
    assert (closed.code, closed.by) == (CloseCode.RECORD_ERROR, "peer")
    # And nothing in the page can use the tunnel any more.
    after = tunnel_page.evaluate(
        "window.tun.open('echo').then(() => 'opened', window.fjh.describe)"
    )
    assert (after["name"], after["code"]) == ("TunnelClosed", CloseCode.RECORD_ERROR)
    assert agent.requests == []


def test_an_agent_hello_from_another_key_is_refused_before_any_stream(tunnel_page, harness) -> None:
    agent = AgentSide(harness, {"echo": echo}, allowed={"echo"})
    agent.identity = Ed25519PrivateKey.generate()  # not the key the server listed
    why = connect_page(tunnel_page, agent)
    assert why["name"] == "AgentKeyMismatch"
    _assert_nothing_after_hello(harness, agent)


def test_the_listed_key_with_another_keys_signature_is_refused(tunnel_page, harness) -> None:
    """A relay rewrites id_a to the listed key; the signature (by another key) fails."""
    agent = AgentSide(harness, {"echo": echo}, allowed={"echo"})
    agent.identity = Ed25519PrivateKey.generate()
    listed = raw_public(agent.world.agent)

    def pose(index: int, message: bytes) -> list[bytes]:
        return [message[:70] + listed + message[102:]] if index == 0 else [message]

    harness.tampers[agent.session_id] = pose
    why = connect_page(tunnel_page, agent)
    assert why["name"] == "BadAgentSignature"
    _assert_nothing_after_hello(harness, agent)


def _assert_nothing_after_hello(harness, agent: AgentSide) -> None:
    harness.run(agent.settled())
    assert isinstance(agent.error, HandshakeError)  # no key confirmation ever came
    assert agent.tunnel is None and agent.requests == []
    page_end = harness.ends[(agent.session_id, Role.TECHNICIAN)]
    assert len(page_end.received) == 1 and page_end.received[0][:6] == b"FJHT\x01\x01"


@pytest.mark.parametrize(
    ("ticket", "code", "slug"),
    [
        ({"machine_id": "another-machine"}, 7, "wrong-machine"),
        (
            {"issued_at": NOW - 2000, "expires_at": NOW - 1500},
            5,
            "ticket-expired",
        ),
        ({"technician_key_sha256": bytes(32)}, 9, "key-mismatch"),
    ],
    ids=["wrong-machine", "expired", "key-mismatch"],
)
def test_refuse_codes_reach_the_page(tunnel_page, harness, ticket, code, slug) -> None:
    agent = AgentSide(harness, {"echo": echo}, allowed={"echo"})
    why = connect_page(tunnel_page, agent, **ticket)
    assert (why["name"], why["code"], why["slug"]) == ("Refused", code, slug)
    harness.run(agent.settled())
    assert agent.error is not None and agent.error.code == code
