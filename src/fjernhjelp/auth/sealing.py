"""Sealing small secrets (TOTP seeds, Yubico AES keys) for storage in the database.

Layout: version (1 byte, 0x01) || nonce (12 bytes) || AES-256-GCM ciphertext || tag (16).
The associated data names what the secret belongs to, so a sealed value copied into
another row (another user's factor) fails to open instead of granting that user's login.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_VERSION = b"\x01"


class SealError(ValueError):
    pass


def seal(key: bytes, plaintext: bytes, context: str) -> bytes:
    nonce = os.urandom(12)
    return _VERSION + nonce + AESGCM(key).encrypt(nonce, plaintext, context.encode())


def unseal(key: bytes, sealed: bytes, context: str) -> bytes:
    if len(sealed) < 1 + 12 + 16 or sealed[:1] != _VERSION:
        raise SealError("not a sealed value of a known version")
    try:
        return AESGCM(key).decrypt(sealed[1:13], sealed[13:], context.encode())
    except InvalidTag as exc:
        raise SealError("sealed value does not open with this key and context") from exc
