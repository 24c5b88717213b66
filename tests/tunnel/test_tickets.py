"""Tickets: what the agent accepts, and every way it refuses one."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fjernhjelp.tunnel import b64
from fjernhjelp.tunnel.codes import RefuseCode
from fjernhjelp.tunnel.limits import MAX_TICKET_LIFETIME, MAX_TICKET_TOKEN, TICKET_CLOCK_LEEWAY
from fjernhjelp.tunnel.tickets import (
    TICKET_CONTEXT,
    BadTicketSignature,
    MalformedTicket,
    Party,
    Permission,
    TicketExpired,
    TicketNotYetValid,
    UnknownPermission,
    UnsupportedTicketVersion,
    WrongMachine,
    issue_ticket,
    verify_ticket,
)
from tests.tunnel.helpers import MACHINE, World


@pytest.fixture
def world() -> World:
    return World()


def payload_of(token: str) -> dict:
    return json.loads(b64.decode(token.split(".")[0]))


def signed(world: World, payload: bytes | dict) -> str:
    """A token whose signature is genuine over an arbitrary payload: what a bug in the
    server, not an attacker, could produce; the agent must still refuse bad content."""
    if isinstance(payload, dict):
        payload = json.dumps(payload).encode()
    signature = world.server.sign(TICKET_CONTEXT + payload)
    return f"{b64.encode(payload)}.{b64.encode(signature)}"


def test_round_trip_keeps_every_field(world: World) -> None:
    ticket = world.ticket()
    token = issue_ticket(world.server, ticket)
    got = verify_ticket(world.server.public_key(), token, ticket.issued_at + 5, MACHINE)
    assert got == ticket
    assert got.allows("terminal") and not got.allows(Permission.CONTROL)
    customer = payload_of(token)["customer_org"]
    assert customer == {"id": "org-customer", "name": "Blåbærlia legekontor"}


def test_token_accepted_as_bytes(world: World) -> None:
    ticket = world.ticket()
    token = issue_ticket(world.server, ticket).encode()
    assert verify_ticket(world.server.public_key(), token, ticket.issued_at, MACHINE) == ticket


def test_signature_by_another_key_is_refused(world: World) -> None:
    ticket = world.ticket()
    forged = issue_ticket(Ed25519PrivateKey.generate(), ticket)
    with pytest.raises(BadTicketSignature) as info:
        verify_ticket(world.server.public_key(), forged, ticket.issued_at, MACHINE)
    assert info.value.refuse_code is RefuseCode.BAD_TICKET_SIGNATURE


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("permissions", ["view", "control", "terminal", "files", "chat"]),
        ("consent_required", False),
        ("machine_id", "another-machine"),
        ("expires_at", 4_000_000_000),
        ("technician", {"id": "tech-17", "name": "Someone Else"}),
    ],
)
def test_altered_field_breaks_the_signature(world: World, field: str, value: object) -> None:
    ticket = world.ticket()
    token = issue_ticket(world.server, ticket)
    payload = payload_of(token)
    payload[field] = value
    altered = b64.encode(json.dumps(payload, separators=(",", ":")).encode())
    tampered = f"{altered}.{token.split('.')[1]}"
    with pytest.raises(BadTicketSignature):
        verify_ticket(world.server.public_key(), tampered, ticket.issued_at, MACHINE)


def test_any_flipped_bit_in_the_token_is_refused(world: World) -> None:
    ticket = world.ticket()
    token = issue_ticket(world.server, ticket)
    for position in range(0, len(token), 7):
        char = token[position]
        swapped = "A" if char != "A" else "B"
        if char == ".":
            continue
        bad = token[:position] + swapped + token[position + 1 :]
        with pytest.raises((BadTicketSignature, MalformedTicket)):
            verify_ticket(world.server.public_key(), bad, ticket.issued_at, MACHINE)


def test_signature_is_domain_separated(world: World) -> None:
    # A signature the server made over the bare payload (say, in another protocol that
    # forgot its label) is not a ticket signature.
    ticket = world.ticket()
    token = issue_ticket(world.server, ticket)
    payload = b64.decode(token.split(".")[0])
    bare = f"{token.split('.')[0]}.{b64.encode(world.server.sign(payload))}"
    with pytest.raises(BadTicketSignature):
        verify_ticket(world.server.public_key(), bare, ticket.issued_at, MACHINE)


def test_expired_ticket_is_refused_after_the_leeway(world: World) -> None:
    ticket = world.ticket()
    token = issue_ticket(world.server, ticket)
    key = world.server.public_key()
    last_good = ticket.expires_at + TICKET_CLOCK_LEEWAY - 1
    assert verify_ticket(key, token, last_good, MACHINE) == ticket
    with pytest.raises(TicketExpired) as info:
        verify_ticket(key, token, ticket.expires_at + TICKET_CLOCK_LEEWAY, MACHINE)
    assert info.value.ticket == ticket  # signed, so the audit may record its fields
    assert info.value.refuse_code is RefuseCode.TICKET_EXPIRED


def test_ticket_from_the_future_is_refused(world: World) -> None:
    ticket = world.ticket()
    token = issue_ticket(world.server, ticket)
    key = world.server.public_key()
    assert verify_ticket(key, token, ticket.issued_at - TICKET_CLOCK_LEEWAY, MACHINE)
    with pytest.raises(TicketNotYetValid):
        verify_ticket(key, token, ticket.issued_at - TICKET_CLOCK_LEEWAY - 1, MACHINE)


def test_ticket_for_another_machine_is_refused(world: World) -> None:
    ticket = world.ticket()
    token = issue_ticket(world.server, ticket)
    with pytest.raises(WrongMachine) as info:
        verify_ticket(world.server.public_key(), token, ticket.issued_at, "other-machine")
    assert info.value.got == MACHINE and info.value.expected == "other-machine"


def test_unknown_permission_is_refused_even_when_signed(world: World) -> None:
    payload = payload_of(world.token())
    payload["permissions"] = ["view", "admin"]
    token, now = signed(world, payload), payload["issued_at"]
    with pytest.raises(UnknownPermission) as info:
        verify_ticket(world.server.public_key(), token, now, MACHINE)
    assert info.value.name == "admin"


def test_unsupported_version_is_refused(world: World) -> None:
    payload = payload_of(world.token())
    payload["version"] = 2
    token, now = signed(world, payload), payload["issued_at"]
    with pytest.raises(UnsupportedTicketVersion) as info:
        verify_ticket(world.server.public_key(), token, now, MACHINE)
    assert info.value.refuse_code is RefuseCode.UNSUPPORTED_TICKET_VERSION


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda p: p.pop("grant_id"), "missing"),
        (lambda p: p.update(extra=1), "unknown"),
        (lambda p: p.update(issued_at=True), "issued_at"),
        (lambda p: p.update(expires_at="soon"), "expires_at"),
        (lambda p: p.update(consent_required=1), "consent_required"),
        (lambda p: p.update(permissions="view"), "permissions"),
        (lambda p: p.update(permissions=["view", "view"]), "twice"),
        (lambda p: p.update(technician_key_sha256="AB" * 32), "lowercase"),
        (lambda p: p.update(technician_key_sha256="zz"), "hex"),
        (lambda p: p.update(technician={"id": "x"}), "technician"),
        (lambda p: p.update(session_id=""), "session_id"),
        (lambda p: p.update(session_id="a/b"), "session_id"),
        (lambda p: p.update(machine_id="m" * 65), "machine_id"),
        (lambda p: p.update(vendor_org={"id": "v", "name": "x" * 201}), "vendor_org.name"),
        (lambda p: p.update(vendor_org={"id": "v", "name": "   "}), "vendor_org.name"),
        (lambda p: p.update(technician={"id": "t", "name": "Kari\nNordmann"}), "control"),
        (lambda p: p.update(customer_org={"id": "c", "name": "Leg\u202eekontor"}), "control"),
        (lambda p: p.update(expires_at=p["issued_at"]), "lifetime"),
        (lambda p: p.update(expires_at=p["issued_at"] + MAX_TICKET_LIFETIME + 1), "lifetime"),
        (lambda p: p.update(issued_at=-5), "issued_at"),
    ],
)
def test_malformed_signed_payloads_are_refused(world: World, mutate, message: str) -> None:
    payload = payload_of(world.token())
    now = payload["issued_at"]
    mutate(payload)
    with pytest.raises(MalformedTicket, match=message):
        verify_ticket(world.server.public_key(), signed(world, payload), now, MACHINE)


@pytest.mark.parametrize(
    "payload",
    [
        b"not json",
        b"[1, 2]",
        b'{"version": 1, "version": 1}',
        b'{"version": NaN}',
        b"\xff\xfe",
        b'{"version": 1.0}',
    ],
)
def test_payloads_that_are_not_ticket_objects_are_refused(world: World, payload: bytes) -> None:
    with pytest.raises(MalformedTicket):
        verify_ticket(world.server.public_key(), signed(world, payload), 0, MACHINE)


@pytest.mark.parametrize(
    "token",
    [
        "",
        "onlyonepart",
        "a.b.c",
        "abc=.def",
        "ab+c.def",
        "a.b",  # decodes, but the signature is not 64 bytes
        "x" * (MAX_TICKET_TOKEN + 1),
        "blåbær.syltetøy",
    ],
)
def test_malformed_tokens_are_refused(world: World, token: str) -> None:
    with pytest.raises(MalformedTicket):
        verify_ticket(world.server.public_key(), token, 0, MACHINE)


def test_non_canonical_base64_is_refused(world: World) -> None:
    token = world.token()
    head, sig = token.split(".")
    # The last character of a 64-byte signature carries 2 unused bits; setting one gives
    # the same bytes with a second spelling, which a strict decoder refuses.
    last = sig[-1]
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    twin = alphabet[alphabet.index(last) | 1]
    assert twin != last
    with pytest.raises(MalformedTicket):
        verify_ticket(world.server.public_key(), f"{head}.{sig[:-1]}{twin}", 0, MACHINE)


def test_bytes_token_must_be_ascii(world: World) -> None:
    with pytest.raises(MalformedTicket):
        verify_ticket(world.server.public_key(), "blåbær".encode(), 0, MACHINE)


def test_issue_refuses_what_verify_would_refuse(world: World) -> None:
    with pytest.raises(MalformedTicket):
        issue_ticket(world.server, world.ticket(machine_id="has space"))
    with pytest.raises(MalformedTicket):
        issue_ticket(world.server, world.ticket(technician=Party("t", "Bad\x00Name")))
    with pytest.raises(UnknownPermission):
        issue_ticket(world.server, world.ticket(permissions=frozenset({"root"})))  # type: ignore[arg-type]
    with pytest.raises(MalformedTicket, match="exceeds"):
        long = Party("x", "𝔸" * 200)  # 4 bytes of UTF-8 each
        huge = world.ticket(
            technician=long, vendor_org=long, customer_org=long, agreement_ref="𝔸" * 200
        )
        issue_ticket(world.server, huge)
    with pytest.raises(UnsupportedTicketVersion):
        issue_ticket(world.server, replace(world.ticket(), version=2))


def test_support_session_tickets_may_have_no_grant(world: World) -> None:
    ticket = world.ticket(grant_id="", agreement_ref="")
    token = issue_ticket(world.server, ticket)
    assert verify_ticket(world.server.public_key(), token, ticket.issued_at, MACHINE) == ticket
