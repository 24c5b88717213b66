"""The server's stamp on a Support client: its URL and public key, appended to the executable.

One generic client executable is built per platform (``make support-client``). The server
makes it *its own* at download time, without rebuilding, by appending a signed block that
names the server and carries its Ed25519 public key; the client pins that key and never
learns it from the network. ELF loaders (and PyInstaller's bootloader, which finds its
archive through an ELF section) ignore bytes after the end of the file's sections, so the
stamped file runs as before.

A stamped file is the generic executable followed by a signed block as
``control.appended`` lays it out (read from the end, its lengths adding up to exactly the
file, bound to the executable's digest): the payload is UTF-8 JSON {"server_url",
"server_public_key"} (the key as base64url without padding, raw 32 bytes), at most
MAX_PAYLOAD bytes, signed by the server's key; MAGIC is b"fjernhjelp-stamp". A download
may carry the session's block after it (``support.handover``).

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
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from fjernhjelp.control import appended
from fjernhjelp.control.appended import SIGNATURE_SIZE as SIGNATURE_SIZE  # named here for tests
from fjernhjelp.control.appended import TRAILER as TRAILER
from fjernhjelp.control.appended import VERSION
from fjernhjelp.control.package import b64d, b64e, check_server_url, fingerprint
from fjernhjelp.support.handover import HandoverRefused, read_handover

MAGIC = b"fjernhjelp-stamp"
CONTEXT = b"fjernhjelp support client stamp v1\x00"
MAX_PAYLOAD = 4096
FORMAT = appended.Format(magic=MAGIC, context=CONTEXT, max_payload=MAX_PAYLOAD)


class StampRefused(appended.Refused):
    """The file carries no usable stamp; the message is for the end user."""


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
    return binary + FORMAT.seal(hashlib.sha256(binary).digest(), len(binary), payload, signing_key)


# How each way the layout can fail reads to the end user (support.client shows it).
_UNREADABLE: Mapping[appended.Fault, tuple[str, str]] = {
    appended.Fault.SHORT: ("missing", "the file is too short to carry a stamp"),
    appended.Fault.NO_MAGIC: ("missing", "the file carries no server stamp"),
    appended.Fault.VERSION: ("version", "stamp version {version} is not " + str(VERSION)),
    appended.Fault.LENGTHS: ("altered", "the stamp's lengths do not match the file"),
    appended.Fault.ENDED_EARLY: ("altered", "the file ended early"),
}


def read_stamp(path: str | os.PathLike[str]) -> Stamp:
    """The stamp at the end of the file at ``path`` (before the session block a download
    carries, support.handover); raises StampRefused saying why not."""
    with Path(path).open("rb") as fh:
        try:
            end, _ = read_handover(fh)
        except HandoverRefused as exc:
            raise StampRefused("altered", str(exc)) from exc
        try:
            found = FORMAT.read(fh, end)
        except appended.Unreadable as exc:
            reason, message = _UNREADABLE[exc.fault]
            raise StampRefused(reason, message.format(version=exc.version)) from exc
    try:
        body = json.loads(found.payload)
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
    if not FORMAT.signed_by(found, key):
        raise StampRefused(
            "altered", "the stamp's signature does not match the file and the key it carries"
        )
    try:
        url = check_server_url(url)
    except ValueError as exc:
        raise StampRefused("server_url", str(exc)) from exc
    return Stamp(server_url=url, server_public_key=key, executable_sha256=found.executable_sha256)
