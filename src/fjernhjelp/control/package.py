"""The installer package: how an agent learns its server, pins its key, and enrols.

Shared by the server (which builds packages) and the agent (which reads them).

A package is a JSON file made by the portal for one machine group::

    {"format": "fjernhjelp-agent-package", "version": 1,
     "payload": "<base64url of the payload's UTF-8 JSON bytes>",
     "signature": "<base64url Ed25519 signature over CONTEXT || payload bytes>"}

The payload is ``{"server_url", "server_public_key" (base64url, raw 32 bytes),
"enrolment_token", "group", "organisation", "expires_at" (ISO 8601 UTC), "package_id"}``.
The signature covers the exact payload bytes (no canonical JSON needed) behind a
domain-separation prefix, so no other thing the server signs can pass as a package.

The trust decision. The package is what pins the server's key; the agent never learns the
key from the network. A signature checked against the key that the package itself carries
proves only that the package is whole and that whoever made it held that key: anyone can
make a self-consistent package for their own server. It does bind the URL, token and group
to the key, so an edited URL or token fails. What makes the key the *right* one is how the
package reached the machine: downloaded from the portal over HTTPS by a logged-in admin or
technician. ``fjernhjelp agent install`` therefore shows the key's fingerprint and asks for
confirmation, or takes ``--expect-fingerprint`` (the portal shows the fingerprint next to
the download, and the operator can publish it): with that, a swapped package is refused
before anything is written. Without it, the install is trust-on-first-use, by the admin's
explicit choice.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat


def fingerprint(public_key: bytes | Ed25519PublicKey) -> str:
    """``SHA256:<base64>`` of a raw Ed25519 public key, as OpenSSH shows keys."""
    if isinstance(public_key, Ed25519PublicKey):
        public_key = public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    digest = hashlib.sha256(public_key).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


FORMAT = "fjernhjelp-agent-package"
VERSION = 1
CONTEXT = b"fjernhjelp agent package v1\x00"
MAX_PACKAGE = 64 * 1024


class PackageRejected(Exception):
    """The package cannot be trusted or used; ``reason`` is machine-readable."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


def b64e(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def b64d(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def check_server_url(url: str) -> str:
    """https, or plain http to a loopback address only (development and tests)."""
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return url.rstrip("/")
    if parts.scheme == "http" and parts.hostname:
        host = parts.hostname
        try:
            loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if loopback:
            return url.rstrip("/")
    raise ValueError("the server URL must be https:// (plain http only to a loopback address)")


@dataclass(frozen=True)
class InstallerPackage:
    server_url: str
    server_public_key: bytes
    enrolment_token: str
    group: str
    organisation: str | None = None
    expires_at: datetime | None = None
    package_id: str | None = None

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.server_public_key)


def build_package(
    signing_key: Ed25519PrivateKey,
    *,
    server_url: str,
    enrolment_token: str,
    group: str,
    organisation: str | None = None,
    expires_at: datetime | None = None,
    package_id: str | None = None,
) -> bytes:
    """The package file's bytes (the portal's side; tests use it too)."""
    public = signing_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    payload = json.dumps(
        {
            "server_url": check_server_url(server_url),
            "server_public_key": b64e(public),
            "enrolment_token": enrolment_token,
            "group": group,
            "organisation": organisation,
            "expires_at": expires_at.astimezone(UTC).isoformat() if expires_at else None,
            "package_id": package_id,
        },
        separators=(",", ":"),
    ).encode()
    envelope = {
        "format": FORMAT,
        "version": VERSION,
        "payload": b64e(payload),
        "signature": b64e(signing_key.sign(CONTEXT + payload)),
    }
    return json.dumps(envelope, indent=2).encode() + b"\n"


def _text(body: dict[str, Any], key: str, *, optional: bool = False) -> str | None:
    value = body.get(key)
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value or len(value) > 2048:
        raise PackageRejected("malformed", f"{key} is missing or not a string")
    return value


def read_package(
    data: bytes, *, expected_fingerprint: str | None = None, now: datetime | None = None
) -> InstallerPackage:
    """Parse and check a package; raises PackageRejected with the reason."""
    if len(data) > MAX_PACKAGE:
        raise PackageRejected("malformed", "the file is too large to be a package")
    try:
        envelope = json.loads(data)
        if envelope.get("format") != FORMAT:
            raise PackageRejected("malformed", "not a fjernhjelp agent package")
        if envelope.get("version") != VERSION:
            raise PackageRejected("version", f"package version {envelope.get('version')!r}")
        payload = b64d(envelope["payload"])
        signature = b64d(envelope["signature"])
        body = json.loads(payload)
        if not isinstance(body, dict):
            raise PackageRejected("malformed", "the payload is not a JSON object")
        key_raw = b64d(_text(body, "server_public_key") or "")
    except PackageRejected:
        raise
    # RecursionError: JSON nested deeper than the interpreter's limit fits in MAX_PACKAGE.
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError, binascii.Error) as exc:
        raise PackageRejected("malformed", "the file is not a well-formed package") from exc
    if len(key_raw) != 32:
        raise PackageRejected("malformed", "the server key is not a 32-byte Ed25519 key")
    if expected_fingerprint is not None and not hmac.compare_digest(
        fingerprint(key_raw), expected_fingerprint.strip()
    ):
        # Checked before the signature: a package for another key is refused whatever it says.
        raise PackageRejected(
            "fingerprint", f"the package's server key is {fingerprint(key_raw)}, not the expected"
        )
    try:
        Ed25519PublicKey.from_public_bytes(key_raw).verify(signature, CONTEXT + payload)
    except InvalidSignature as exc:
        raise PackageRejected("signature", "the signature does not match the content") from exc
    try:
        url = check_server_url(_text(body, "server_url") or "")
    except ValueError as exc:
        raise PackageRejected("server_url", str(exc)) from exc
    expires = _text(body, "expires_at", optional=True)
    expires_at = None
    if expires is not None:
        try:
            expires_at = datetime.fromisoformat(expires)
        except ValueError as exc:
            raise PackageRejected("malformed", "expires_at is not a date") from exc
        if expires_at.tzinfo is None:
            raise PackageRejected("malformed", "expires_at has no time zone")
        if expires_at <= (now or datetime.now(UTC)):
            raise PackageRejected("expired", f"the package expired at {expires_at.isoformat()}")
    return InstallerPackage(
        server_url=url,
        server_public_key=key_raw,
        enrolment_token=_text(body, "enrolment_token") or "",
        group=_text(body, "group") or "",
        organisation=_text(body, "organisation", optional=True),
        expires_at=expires_at,
        package_id=_text(body, "package_id", optional=True),
    )
