"""A signed block appended to the one-file executable, read from the file's end.

The server makes the one generic build its own at download time by appending a block, in
two kinds: its stamp on a Support client (``support.stamp``) and an installer package on a
one-file agent (``control.agent_file``). Both are laid out alike, and this module is the
one place that writes and reads the layout; each kind names its own :class:`Format` (magic,
signing context, largest payload) and says what its payload means.

The bytes, integers unsigned and big-endian::

    offset 0         B bytes   the generic executable, unchanged
    offset B         P bytes   payload (the kind's own)
    offset B+P       64 bytes  Ed25519 signature over CONTEXT || SHA-256(executable) || payload
    offset B+P+64    32 bytes  trailer:
                                 8  B, the executable's length
                                 4  P, the payload's length (1..max_payload)
                                 2  VERSION (1)
                                 2  zero
                                16  MAGIC (the kind's)

``end`` is where the block ends: the file's size, or where a later, unsigned block begins
(``support.handover``). The reader starts there: the trailer's last 16 bytes must be the
kind's MAGIC, and the lengths must add up to exactly ``end``, so there is one block and
nothing between it and ``end``. The signature covers the executable's digest, so a block
cut from one build and pasted onto another is refused.

What the reader does not decide: the key. It travels inside the payload, so only the kind
can name it (after parsing the payload, which is therefore read before the signature is
checked, and must be parsed with that in mind), and whether it is the *right* key comes
from how the file reached its user.
"""

from __future__ import annotations

import enum
import hashlib
import struct
from dataclasses import dataclass
from typing import BinaryIO

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

VERSION = 1
TRAILER = struct.Struct(">QIHH16s")  # executable length, payload length, version, zero, magic
MAGIC_SIZE = 16
SIGNATURE_SIZE = 64
_CHUNK = 1 << 20  # the executable is hashed in pieces: it is tens of megabytes


class Fault(enum.Enum):
    """Why a block could not be read; each kind words these for its own users."""

    SHORT = "short"  # fewer bytes than a signature and a trailer
    NO_MAGIC = "no_magic"  # the trailer does not end with the kind's MAGIC: no block
    VERSION = "version"  # another layout version, or the zero field is not zero
    LENGTHS = "lengths"  # the payload's length is out of range, or the lengths miss ``end``
    ENDED_EARLY = "ended_early"  # the file gave fewer bytes than its lengths promised


class Refused(Exception):
    """A file whose block a kind will not use (each kind has its own subclass);
    ``reason`` is machine-readable, ``message`` says why in words its user can act on."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


class Unreadable(Exception):
    """No whole block where one was looked for; ``version`` is the trailer's (0 when the
    fault came before it was read)."""

    def __init__(self, fault: Fault, version: int = 0) -> None:
        super().__init__(fault.value)
        self.fault = fault
        self.version = version


@dataclass(frozen=True)
class Block:
    """A block whose layout is whole; its signature is checked apart (Format.signed_by)."""

    executable_size: int
    executable_sha256: bytes
    payload: bytes
    signature: bytes


@dataclass(frozen=True)
class Format:
    """One kind of block."""

    magic: bytes  # MAGIC_SIZE bytes, the file's last
    context: bytes  # what the signed message starts with, so one kind's signature is no other's
    max_payload: int

    def __post_init__(self) -> None:
        if len(self.magic) != MAGIC_SIZE:
            raise ValueError(f"a block's magic is {MAGIC_SIZE} bytes")
        if not 0 < self.max_payload < 1 << 32:
            raise ValueError("a payload's length must fit the trailer's four bytes")

    def seal(
        self,
        executable_sha256: bytes,
        executable_size: int,
        payload: bytes,
        signing_key: Ed25519PrivateKey,
    ) -> bytes:
        """Payload, signature and trailer: what follows the executable whose digest and
        length are given (a cached digest spares hashing the build for every download)."""
        if not 0 < len(payload) <= self.max_payload:
            raise ValueError("the payload's length is out of range")
        signature = signing_key.sign(self.context + executable_sha256 + payload)
        trailer = TRAILER.pack(executable_size, len(payload), VERSION, 0, self.magic)
        return payload + signature + trailer

    def read(self, fh: BinaryIO, end: int) -> Block:
        """The block that ends at byte ``end`` of ``fh``; raises Unreadable saying why not.
        Leaves ``fh`` at the block's signature's end."""
        if end < TRAILER.size + SIGNATURE_SIZE:
            raise Unreadable(Fault.SHORT)
        fh.seek(end - TRAILER.size)
        trailer = fh.read(TRAILER.size)
        if len(trailer) != TRAILER.size:
            raise Unreadable(Fault.ENDED_EARLY)
        executable_size, payload_size, version, zero, magic = TRAILER.unpack(trailer)
        if magic != self.magic:
            raise Unreadable(Fault.NO_MAGIC)
        if version != VERSION or zero != 0:
            raise Unreadable(Fault.VERSION, version)
        if not 0 < payload_size <= self.max_payload or (
            executable_size + payload_size + SIGNATURE_SIZE + TRAILER.size != end
        ):
            raise Unreadable(Fault.LENGTHS, version)
        fh.seek(0)
        digest = hashlib.sha256()
        remaining = executable_size
        while remaining:
            chunk = fh.read(min(remaining, _CHUNK))
            if not chunk:
                raise Unreadable(Fault.ENDED_EARLY, version)
            digest.update(chunk)
            remaining -= len(chunk)
        payload = fh.read(payload_size)
        signature = fh.read(SIGNATURE_SIZE)
        if len(payload) != payload_size or len(signature) != SIGNATURE_SIZE:
            raise Unreadable(Fault.ENDED_EARLY, version)
        return Block(
            executable_size=executable_size,
            executable_sha256=digest.digest(),
            payload=payload,
            signature=signature,
        )

    def signed_by(self, block: Block, public_key: bytes) -> bool:
        """Whether the key (raw 32 bytes; another length raises ValueError) signed this
        block for this executable."""
        try:
            Ed25519PublicKey.from_public_bytes(public_key).verify(
                block.signature, self.context + block.executable_sha256 + block.payload
            )
        except InvalidSignature:
            return False
        return True
