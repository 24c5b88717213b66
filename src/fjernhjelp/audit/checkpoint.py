"""Signed audit checkpoints: the byte format, signing, and the checkpoint file.

Whoever owns the database can drop the append-only triggers, rewrite an event and re-hash
everything after it and the head: the chain then verifies again. A checkpoint is the
server's Ed25519 signature over the chain head (count, hash, time), made with the signing
key in the data directory, which the database does not hold. Copies leave the server (the
syslog stream, the organisations' downloads), so a rewritten history no longer matches
them. The format is specified in docs/audit-checkpoints.md; this module imports nothing of
the server or the database, so a checkpoint file can be checked anywhere.

Signed bytes (all integers big-endian)::

    "fjernhjelp audit checkpoint" 0x00   28 bytes, domain separation
    version                              1 byte, 1
    seq                                  8 bytes, events in the chain (the head's seq)
    head                                 32 bytes, the head hash (SHA-256, raw)
    signed_at                            8 bytes, Unix seconds (UTC)
    key                                  32 bytes, SHA-256 of the raw signing public key
"""

from __future__ import annotations

import hashlib
import json
import re
import struct
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from fjernhjelp.control.package import b64d, b64e, fingerprint

# The server's key also signs tickets and installer packages; each use has its own
# NUL-terminated label, so no signature is valid in two roles.
CHECKPOINT_CONTEXT = b"fjernhjelp audit checkpoint\x00"
CHECKPOINT_VERSION = 1
FILE_FORMAT = "fjernhjelp-audit-checkpoints"
FILE_VERSION = 1

_HEX64 = re.compile(r"[0-9a-f]{64}")
_LAYOUT = struct.Struct(">BQ32sQ32s")
MAX_CHECKPOINTS_IN_FILE = 1_000_000


class CheckpointError(Exception):
    """A checkpoint or checkpoint file that cannot be trusted; the message says why."""


@dataclass(frozen=True, slots=True)
class Checkpoint:
    seq: int
    head: str  # the chain head hash, 64 lowercase hex digits
    signed_at: datetime  # UTC, whole seconds
    signature: bytes  # 64 bytes, Ed25519

    @property
    def signed_at_unix(self) -> int:
        return int(self.signed_at.timestamp())


def raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def signed_bytes(seq: int, head: str, signed_at_unix: int, public_key: bytes) -> bytes:
    if not _HEX64.fullmatch(head):
        raise CheckpointError("the head must be 64 lowercase hex digits")
    if not 0 <= seq < 2**63 or not 0 <= signed_at_unix < 2**63:
        raise CheckpointError("seq or time out of range")
    return CHECKPOINT_CONTEXT + _LAYOUT.pack(
        CHECKPOINT_VERSION,
        seq,
        bytes.fromhex(head),
        signed_at_unix,
        hashlib.sha256(public_key).digest(),
    )


def sign(key: Ed25519PrivateKey, seq: int, head: str, now: datetime) -> Checkpoint:
    at = now.astimezone(UTC).replace(microsecond=0)
    message = signed_bytes(seq, head, int(at.timestamp()), raw_public(key.public_key()))
    return Checkpoint(seq, head, at, key.sign(message))


def verify_signature(checkpoint: Checkpoint, key: Ed25519PublicKey) -> None:
    message = signed_bytes(
        checkpoint.seq, checkpoint.head, checkpoint.signed_at_unix, raw_public(key)
    )
    try:
        key.verify(checkpoint.signature, message)
    except InvalidSignature as exc:
        raise CheckpointError(
            f"the checkpoint at event {checkpoint.seq} is not signed by the server key "
            f"{fingerprint(key)}"
        ) from exc


# --- the file ---------------------------------------------------------------------------


def checkpoint_as_dict(checkpoint: Checkpoint) -> dict[str, object]:
    return {
        "seq": checkpoint.seq,
        "head": checkpoint.head,
        "signed_at": checkpoint.signed_at.isoformat().replace("+00:00", "Z"),
        "signature": b64e(checkpoint.signature),
    }


def file_bytes(checkpoints: list[Checkpoint], key: Ed25519PublicKey) -> bytes:
    """The checkpoint file: stands alone (it names the key), oldest checkpoint first."""
    document = {
        "format": FILE_FORMAT,
        "version": FILE_VERSION,
        "server_key": b64e(raw_public(key)),
        "server_key_fingerprint": fingerprint(key),
        "checkpoints": [checkpoint_as_dict(c) for c in sorted(checkpoints, key=lambda c: c.seq)],
    }
    return (json.dumps(document, indent=1, ensure_ascii=True) + "\n").encode()


@dataclass(frozen=True, slots=True)
class CheckpointFile:
    server_key: Ed25519PublicKey
    checkpoints: list[Checkpoint]

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.server_key)


def _checkpoint_from(item: object) -> Checkpoint:
    if not isinstance(item, dict) or set(item) != {"seq", "head", "signed_at", "signature"}:
        raise CheckpointError("a checkpoint must have exactly seq, head, signed_at, signature")
    seq, head, at, sig = item["seq"], item["head"], item["signed_at"], item["signature"]
    if not isinstance(seq, int) or isinstance(seq, bool) or not 0 <= seq < 2**63:
        raise CheckpointError("seq must be a non-negative integer")
    if not isinstance(head, str) or not _HEX64.fullmatch(head):
        raise CheckpointError("head must be 64 lowercase hex digits")
    if not isinstance(at, str) or not at.endswith("Z"):
        raise CheckpointError("signed_at must be a UTC time ending in Z")
    try:
        signed_at = datetime.fromisoformat(at[:-1] + "+00:00")
        signature = b64d(sig) if isinstance(sig, str) else b""
    except ValueError as exc:
        raise CheckpointError(f"checkpoint at event {seq}: {exc}") from exc
    if signed_at.microsecond or len(signature) != 64:
        raise CheckpointError(f"checkpoint at event {seq}: malformed time or signature")
    return Checkpoint(seq, head, signed_at, signature)


def parse_file(data: bytes) -> CheckpointFile:
    """Parse strictly; the signatures are checked by :func:`verified`, against a key the
    caller trusts, never against the key the file names alone."""
    try:
        document = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"not a checkpoint file ({exc})") from exc
    if not isinstance(document, dict) or document.get("format") != FILE_FORMAT:
        raise CheckpointError(f"not a checkpoint file (format is not {FILE_FORMAT!r})")
    if document.get("version") != FILE_VERSION:
        raise CheckpointError(f"unsupported checkpoint file version {document.get('version')!r}")
    try:
        raw_key = b64d(str(document.get("server_key", "")))
        key = Ed25519PublicKey.from_public_bytes(raw_key)
    except ValueError as exc:
        raise CheckpointError("server_key is not a base64url Ed25519 public key") from exc
    if document.get("server_key_fingerprint") != fingerprint(raw_key):
        raise CheckpointError("server_key_fingerprint does not match server_key")
    items = document.get("checkpoints")
    if not isinstance(items, list) or not items or len(items) > MAX_CHECKPOINTS_IN_FILE:
        raise CheckpointError("the file holds no checkpoints")
    checkpoints = sorted((_checkpoint_from(i) for i in items), key=lambda c: c.seq)
    return CheckpointFile(key, checkpoints)


def trusted_key(file: CheckpointFile, expected: str | Ed25519PublicKey) -> Ed25519PublicKey:
    """The key to verify with: ``expected`` is the server's public key, or its
    ``SHA256:`` fingerprint, from a source the verifier trusts (the server's key file,
    the portal, the installer package). A file naming another key is refused."""
    want = expected if isinstance(expected, str) else fingerprint(expected)
    if file.fingerprint != want:
        raise CheckpointError(
            f"the file is signed for server key {file.fingerprint}, not the trusted {want}"
        )
    return file.server_key


def verified(file: CheckpointFile, expected: str | Ed25519PublicKey) -> list[Checkpoint]:
    """Every checkpoint in the file, each signature checked; raises on the first bad one."""
    key = trusted_key(file, expected)
    for checkpoint in file.checkpoints:
        verify_signature(checkpoint, key)
    return file.checkpoints


def parse_server_key(text: str) -> str | Ed25519PublicKey:
    """A ``--server-key`` value: a ``SHA256:`` fingerprint or a base64url raw public key."""
    text = text.strip()
    if text.startswith("SHA256:"):
        return text
    try:
        return Ed25519PublicKey.from_public_bytes(b64d(text))
    except ValueError as exc:
        raise CheckpointError(
            "--server-key takes the server's SHA256: fingerprint or its base64url public key"
        ) from exc
