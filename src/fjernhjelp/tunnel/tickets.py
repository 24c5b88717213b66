"""The server-signed ticket that authorises one tunnel (docs/tunnel.md, "Ticket").

Token: ``base64url(payload) "." base64url(signature)`` where payload is UTF-8 JSON and the
signature is Ed25519 by the server's signing key over ``TICKET_CONTEXT || payload``. The
signature covers the exact payload bytes, so no end ever canonicalises JSON: the agent
verifies the bytes it received, then parses them strictly.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, ClassVar

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from fjernhjelp.tunnel import b64
from fjernhjelp.tunnel.codes import RefuseCode
from fjernhjelp.tunnel.errors import TunnelError
from fjernhjelp.tunnel.limits import (
    MAX_ID,
    MAX_NAME,
    MAX_TICKET_LIFETIME,
    MAX_TICKET_TOKEN,
    TICKET_CLOCK_LEEWAY,
)

TICKET_VERSION = 1
# Domain separation: the server's key also signs other things (installer packages). Each
# use has its own NUL-terminated label, so no signature is valid in two roles.
TICKET_CONTEXT = b"fjernhjelp ticket\x00"

_ID = re.compile(r"[A-Za-z0-9._:-]+")
_MAX_TIMESTAMP = 2**53 - 1  # exact in a JavaScript number
# Control and format characters (line breaks, bidirectional overrides, zero-width joiners)
# could make a name in the consent dialog read as another organisation's.
_FORBIDDEN_CATEGORIES = frozenset(("Cc", "Cf", "Cs", "Co", "Zl", "Zp"))


class Permission(StrEnum):
    VIEW = "view"
    CONTROL = "control"
    TERMINAL = "terminal"
    FILES = "files"
    CHAT = "chat"
    CLIPBOARD = "clipboard"
    TERMINAL_ADMIN = "terminal_admin"  # a shell as the agent's own account, or as root


@dataclass(frozen=True)
class Party:
    """A technician or an organisation: an id for the audit, a name for people."""

    id: str
    name: str


@dataclass(frozen=True)
class Ticket:
    session_id: str
    machine_id: str
    technician: Party
    vendor_org: Party
    customer_org: Party
    permissions: frozenset[Permission]
    consent_required: bool
    issued_at: int  # Unix seconds
    expires_at: int  # Unix seconds; the latest time a handshake may use the ticket
    technician_key_sha256: bytes  # SHA-256 of the technician's raw X25519 public key
    grant_id: str = ""  # empty for a Support session, which has no grant
    agreement_ref: str = ""
    version: int = TICKET_VERSION

    def allows(self, permission: Permission | str) -> bool:
        return Permission(permission) in self.permissions


# --- failures ----------------------------------------------------------------------------


class TicketError(TunnelError):
    """A ticket the agent must refuse; ``refuse_code`` is what the REFUSE message says."""

    refuse_code: ClassVar[RefuseCode] = RefuseCode.MALFORMED_TICKET


class MalformedTicket(TicketError):
    def __init__(self, detail: str) -> None:
        super().__init__(f"malformed ticket: {detail}")
        self.detail = detail


class UnknownPermission(MalformedTicket):
    def __init__(self, name: str) -> None:
        super().__init__(f"unknown permission {name!r}")
        self.name = name


class BadTicketSignature(TicketError):
    refuse_code = RefuseCode.BAD_TICKET_SIGNATURE

    def __init__(self) -> None:
        super().__init__("ticket signature does not verify under the pinned server key")


class UnsupportedTicketVersion(TicketError):
    refuse_code = RefuseCode.UNSUPPORTED_TICKET_VERSION

    def __init__(self, version: object) -> None:
        super().__init__(f"unsupported ticket version {version!r}")
        self.version = version


class SignedButInvalid(TicketError):
    """The server did sign this ticket, but it is not valid here and now; ``ticket`` holds
    its (authentic) fields for the audit."""

    def __init__(self, message: str, ticket: Ticket) -> None:
        super().__init__(message)
        self.ticket = ticket


class TicketExpired(SignedButInvalid):
    refuse_code = RefuseCode.TICKET_EXPIRED

    def __init__(self, ticket: Ticket, now: float) -> None:
        super().__init__(f"ticket expired at {ticket.expires_at}, now {int(now)}", ticket)
        self.expires_at = ticket.expires_at
        self.now = now


class TicketNotYetValid(SignedButInvalid):
    refuse_code = RefuseCode.TICKET_NOT_YET_VALID

    def __init__(self, ticket: Ticket, now: float) -> None:
        super().__init__(f"ticket issued at {ticket.issued_at}, after now {int(now)}", ticket)
        self.issued_at = ticket.issued_at
        self.now = now


class WrongMachine(SignedButInvalid):
    refuse_code = RefuseCode.WRONG_MACHINE

    def __init__(self, ticket: Ticket, expected: str) -> None:
        super().__init__(f"ticket is for machine {ticket.machine_id!r}, not {expected!r}", ticket)
        self.expected = expected
        self.got = ticket.machine_id


# --- issuing and verifying ---------------------------------------------------------------


def technician_key_hash(public_key: bytes) -> bytes:
    """The ticket's ``technician_key_sha256`` for a raw 32-byte X25519 public key."""
    if len(public_key) != 32:
        raise ValueError("an X25519 public key is 32 bytes")
    return hashlib.sha256(public_key).digest()


def issue_ticket(signing_key: Ed25519PrivateKey, ticket: Ticket) -> str:
    """Sign ``ticket``; raises MalformedTicket if any field is out of bounds, so the
    server can never issue a ticket an agent would refuse as malformed."""
    if ticket.version != TICKET_VERSION:
        raise UnsupportedTicketVersion(ticket.version)
    _check_fields(ticket)
    payload = json.dumps(_to_json(ticket), separators=(",", ":"), ensure_ascii=False).encode()
    signature = signing_key.sign(TICKET_CONTEXT + payload)
    token = f"{b64.encode(payload)}.{b64.encode(signature)}"
    if len(token) > MAX_TICKET_TOKEN:
        raise MalformedTicket(f"token of {len(token)} bytes exceeds {MAX_TICKET_TOKEN}")
    return token


def verify_ticket(
    server_public_key: Ed25519PublicKey,
    token: str | bytes,
    now: float,
    machine_id: str,
    leeway: int = TICKET_CLOCK_LEEWAY,
) -> Ticket:
    """The ticket in ``token`` if the pinned server key signed it, it names this machine
    and ``now`` (Unix seconds) is within its validity, each widened by ``leeway``."""
    payload = _signed_payload(server_public_key, token)
    ticket = _from_json(payload)
    if ticket.machine_id != machine_id:
        raise WrongMachine(ticket, machine_id)
    if now + leeway < ticket.issued_at:
        raise TicketNotYetValid(ticket, now)
    if now >= ticket.expires_at + leeway:
        raise TicketExpired(ticket, now)
    return ticket


def _signed_payload(server_public_key: Ed25519PublicKey, token: str | bytes) -> bytes:
    if isinstance(token, bytes):
        try:
            token = token.decode("ascii")
        except UnicodeDecodeError:
            raise MalformedTicket("token is not ASCII") from None
    if len(token) > MAX_TICKET_TOKEN:
        raise MalformedTicket(f"token of {len(token)} bytes exceeds {MAX_TICKET_TOKEN}")
    parts = token.split(".")
    if len(parts) != 2:
        raise MalformedTicket("token is not payload.signature")
    try:
        payload, signature = b64.decode(parts[0]), b64.decode(parts[1])
    except ValueError as exc:
        raise MalformedTicket(str(exc)) from None
    if len(signature) != 64:
        raise MalformedTicket("signature is not 64 bytes")
    # The signature is checked before the payload is parsed: nothing unauthenticated is
    # interpreted beyond its length.
    try:
        server_public_key.verify(signature, TICKET_CONTEXT + payload)
    except InvalidSignature:
        raise BadTicketSignature() from None
    return payload


def _to_json(t: Ticket) -> dict[str, Any]:
    return {
        "version": t.version,
        "session_id": t.session_id,
        "machine_id": t.machine_id,
        "technician": {"id": t.technician.id, "name": t.technician.name},
        "vendor_org": {"id": t.vendor_org.id, "name": t.vendor_org.name},
        "customer_org": {"id": t.customer_org.id, "name": t.customer_org.name},
        "permissions": sorted(p.value for p in t.permissions),
        "consent_required": t.consent_required,
        "issued_at": t.issued_at,
        "expires_at": t.expires_at,
        "technician_key_sha256": t.technician_key_sha256.hex(),
        "grant_id": t.grant_id,
        "agreement_ref": t.agreement_ref,
    }


_FIELDS = frozenset(
    (
        "version",
        "session_id",
        "machine_id",
        "technician",
        "vendor_org",
        "customer_org",
        "permissions",
        "consent_required",
        "issued_at",
        "expires_at",
        "technician_key_sha256",
        "grant_id",
        "agreement_ref",
    )
)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise MalformedTicket(f"duplicate field {key!r}")
        result[key] = value
    return result


def _reject_constant(name: str) -> None:
    raise MalformedTicket(f"{name} is not JSON")


def _from_json(payload: bytes) -> Ticket:
    try:
        data = json.loads(
            payload.decode("utf-8"),
            object_pairs_hook=_no_duplicates,
            parse_constant=_reject_constant,
        )
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise MalformedTicket(f"payload is not UTF-8 JSON: {exc}") from None
    if not isinstance(data, dict):
        raise MalformedTicket("payload is not an object")
    # The version is read first: a later version may change any other field.
    version = data.get("version")
    if type(version) is not int:
        raise MalformedTicket("version is not an integer")
    if version != TICKET_VERSION:
        raise UnsupportedTicketVersion(version)
    if set(data) != _FIELDS:
        missing, extra = sorted(_FIELDS - set(data)), sorted(set(data) - _FIELDS)
        raise MalformedTicket(f"fields missing {missing}, unknown {extra}")
    permissions = data["permissions"]
    if not isinstance(permissions, list):
        raise MalformedTicket("permissions is not a list")
    try:
        key_hash = bytes.fromhex(_str(data, "technician_key_sha256"))
    except ValueError:
        raise MalformedTicket("technician_key_sha256 is not hex") from None
    if len(key_hash) != 32 or key_hash.hex() != data["technician_key_sha256"]:
        raise MalformedTicket("technician_key_sha256 is not 64 lowercase hex digits")
    ticket = Ticket(
        version=version,
        session_id=_str(data, "session_id"),
        machine_id=_str(data, "machine_id"),
        technician=_party(data, "technician"),
        vendor_org=_party(data, "vendor_org"),
        customer_org=_party(data, "customer_org"),
        permissions=_permissions(permissions),
        consent_required=_bool(data, "consent_required"),
        issued_at=_int(data, "issued_at"),
        expires_at=_int(data, "expires_at"),
        technician_key_sha256=key_hash,
        grant_id=_str(data, "grant_id"),
        agreement_ref=_str(data, "agreement_ref"),
    )
    _check_fields(ticket)
    return ticket


def _str(data: dict[str, Any], key: str) -> str:
    value = data[key]
    if not isinstance(value, str):
        raise MalformedTicket(f"{key} is not a string")
    return value


def _int(data: dict[str, Any], key: str) -> int:
    value = data[key]
    if type(value) is not int:  # bool is an int subclass; a timestamp is not a bool
        raise MalformedTicket(f"{key} is not an integer")
    return value


def _bool(data: dict[str, Any], key: str) -> bool:
    value = data[key]
    if not isinstance(value, bool):
        raise MalformedTicket(f"{key} is not a boolean")
    return value


def _party(data: dict[str, Any], key: str) -> Party:
    value = data[key]
    if not isinstance(value, dict) or set(value) != {"id", "name"}:
        raise MalformedTicket(f"{key} is not an object with exactly id and name")
    if not isinstance(value["id"], str) or not isinstance(value["name"], str):
        raise MalformedTicket(f"{key}.id and {key}.name must be strings")
    return Party(value["id"], value["name"])


def _permissions(names: list[Any]) -> frozenset[Permission]:
    result: set[Permission] = set()
    for name in names:
        if not isinstance(name, str):
            raise MalformedTicket("a permission is not a string")
        try:
            permission = Permission(name)
        except ValueError:
            raise UnknownPermission(name) from None
        if permission in result:
            raise MalformedTicket(f"permission {name!r} listed twice")
        result.add(permission)
    return frozenset(result)


def _check_id(what: str, value: str, *, empty: bool = False) -> None:
    if empty and value == "":
        return
    if not isinstance(value, str) or len(value) > MAX_ID or not _ID.fullmatch(value):
        raise MalformedTicket(f"{what} must be 1 to {MAX_ID} of A-Z a-z 0-9 . _ : -")


def _check_name(what: str, value: str, *, empty: bool = False) -> None:
    if not isinstance(value, str) or len(value) > MAX_NAME or (not empty and not value.strip()):
        raise MalformedTicket(f"{what} must be 1 to {MAX_NAME} characters")
    for char in value:
        if unicodedata.category(char) in _FORBIDDEN_CATEGORIES:
            raise MalformedTicket(f"{what} holds control character U+{ord(char):04X}")


def _check_fields(t: Ticket) -> None:
    _check_id("session_id", t.session_id)
    _check_id("machine_id", t.machine_id)
    _check_id("grant_id", t.grant_id, empty=True)
    for what, party in (
        ("technician", t.technician),
        ("vendor_org", t.vendor_org),
        ("customer_org", t.customer_org),
    ):
        _check_id(f"{what}.id", party.id)
        _check_name(f"{what}.name", party.name)
    _check_name("agreement_ref", t.agreement_ref, empty=True)
    for permission in t.permissions:
        if not isinstance(permission, Permission):
            raise UnknownPermission(str(permission))
    if not isinstance(t.consent_required, bool):
        raise MalformedTicket("consent_required is not a boolean")
    for what, value in (("issued_at", t.issued_at), ("expires_at", t.expires_at)):
        if type(value) is not int or not 0 <= value <= _MAX_TIMESTAMP:
            raise MalformedTicket(f"{what} is not a Unix time in seconds")
    lifetime = t.expires_at - t.issued_at
    if not 0 < lifetime <= MAX_TICKET_LIFETIME:
        raise MalformedTicket(f"lifetime of {lifetime} s is outside 1..{MAX_TICKET_LIFETIME}")
    if not isinstance(t.technician_key_sha256, bytes) or len(t.technician_key_sha256) != 32:
        raise MalformedTicket("technician_key_sha256 is not 32 bytes")
