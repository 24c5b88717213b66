"""The server's stamp on a Support client: its URL and public key, appended to the executable.

One generic client executable is built per platform (``make support-client``). The server
makes it *its own* at download time, without rebuilding, by appending a signed block that
names the server and carries its Ed25519 public key; the client pins that key and never
learns it from the network. ELF loaders (and PyInstaller's bootloader, which finds its
archive through an ELF section) ignore bytes after the end of the file's sections, so the
stamped file runs as before.

A stamped file, byte for byte (integers unsigned, big-endian)::

    offset 0         B bytes   the generic executable, unchanged
    offset B         P bytes   payload: UTF-8 JSON {"server_url", "server_public_key"}
                               (the key as base64url without padding, raw 32 bytes)
    offset B+P       64 bytes  Ed25519 signature by the server's key over
                               CONTEXT || SHA-256(executable) || payload
    offset B+P+64    32 bytes  trailer:
                                 8  B, the executable's length
                                 4  P, the payload's length (1..MAX_PAYLOAD)
                                 2  VERSION (1)
                                 2  zero
                                16  MAGIC, b"fjernhjelp-stamp"

The reader starts from the end: the trailer's last 16 bytes must be MAGIC, and the lengths
must add up to exactly the file's size, so there is one block, at the very end, and nothing
after it. The signature covers the executable's digest: a block cut from one build and
pasted onto another (an older one with a known flaw, say) is refused.

What the signature proves, and what it does not (the same as ``control.package``): it is
checked against the key the block itself carries, so it shows the block is whole and was
made by whoever holds that key; anyone can stamp a client for their own server. That the
key is the *right* one comes from how the file reached the user: downloaded over HTTPS from
the server's own start page, which shows the same fingerprint. Stamping takes the private
key, not only the public half, so the key carried is always the one that signed.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from fjernhjelp.control.package import b64d, b64e, check_server_url, fingerprint
from fjernhjelp.support.handover import HandoverRefused, read_handover

MAGIC = b"fjernhjelp-stamp"
VERSION = 1
CONTEXT = b"fjernhjelp support client stamp v1\x00"
TRAILER = struct.Struct(">QIHH16s")  # executable length, payload length, version, zero, magic
SIGNATURE_SIZE = 64
MAX_PAYLOAD = 4096


class StampRefused(Exception):
    """The file carries no usable stamp; ``reason`` is machine-readable."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class Stamp:
    server_url: str
    server_public_key: bytes  # raw 32 bytes
    executable_sha256: bytes  # of the generic executable the stamp is bound to

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.server_public_key)


def stamp(binary: bytes, server_url: str, signing_key: Ed25519PrivateKey) -> bytes:
    """``binary`` with the server's block appended; refuses a file that is stamped already."""
    if binary.endswith(MAGIC):
        # Stamping a stamped file would bury the first block inside "the executable".
        raise StampRefused("stamped", "the file carries a stamp already; stamp the generic build")
    public = signing_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    payload = json.dumps(
        {"server_url": check_server_url(server_url), "server_public_key": b64e(public)},
        separators=(",", ":"),
    ).encode()
    if len(payload) > MAX_PAYLOAD:
        raise ValueError("the server URL is too long for a stamp")
    signature = signing_key.sign(CONTEXT + hashlib.sha256(binary).digest() + payload)
    trailer = TRAILER.pack(len(binary), len(payload), VERSION, 0, MAGIC)
    return binary + payload + signature + trailer


def read_stamp(path: str | os.PathLike[str]) -> Stamp:
    """The stamp at the end of the file at ``path`` (before the session block a download
    carries, support.handover); raises StampRefused saying why not."""
    with Path(path).open("rb") as fh:
        try:
            size, _ = read_handover(fh)
        except HandoverRefused as exc:
            raise StampRefused("altered", str(exc)) from exc
        if size < TRAILER.size + SIGNATURE_SIZE:
            raise StampRefused("missing", "the file is too short to carry a stamp")
        fh.seek(size - TRAILER.size)
        binary_size, payload_size, version, zero, magic = TRAILER.unpack(fh.read(TRAILER.size))
        if magic != MAGIC:
            raise StampRefused("missing", "the file carries no server stamp")
        if version != VERSION or zero != 0:
            raise StampRefused("version", f"stamp version {version} is not {VERSION}")
        if not 0 < payload_size <= MAX_PAYLOAD or (
            binary_size + payload_size + SIGNATURE_SIZE + TRAILER.size != size
        ):
            raise StampRefused("altered", "the stamp's lengths do not match the file")
        fh.seek(0)
        digest = hashlib.sha256()
        remaining = binary_size
        while remaining:
            chunk = fh.read(min(remaining, 1 << 20))
            if not chunk:
                raise StampRefused("altered", "the file ended early")
            digest.update(chunk)
            remaining -= len(chunk)
        payload = fh.read(payload_size)
        signature = fh.read(SIGNATURE_SIZE)
    try:
        body = json.loads(payload)
        key = b64d(body["server_public_key"])
        url = body["server_url"]
        if (
            not isinstance(url, str)
            or len(key) != 32
            or set(body)
            != {
                "server_url",
                "server_public_key",
            }
        ):
            raise ValueError("unexpected fields")
    # RecursionError: JSON nested deeper than the interpreter's limit fits in MAX_PAYLOAD
    # (and the payload is read before the signature is checked).
    except (ValueError, KeyError, TypeError, RecursionError) as exc:
        raise StampRefused("altered", "the stamp's payload is not well-formed") from exc
    try:
        Ed25519PublicKey.from_public_bytes(key).verify(
            signature, CONTEXT + digest.digest() + payload
        )
    except InvalidSignature as exc:
        raise StampRefused(
            "altered", "the stamp's signature does not match the file and the key it carries"
        ) from exc
    try:
        url = check_server_url(url)
    except ValueError as exc:
        raise StampRefused("server_url", str(exc)) from exc
    return Stamp(server_url=url, server_public_key=key, executable_sha256=digest.digest())
