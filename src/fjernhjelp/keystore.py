"""The server's own keys, kept as files in the data directory (mode 0600).

- ``at-rest.key``: 32 random bytes; seals second-factor secrets in the database.
- ``cookie.key``: 32 random bytes; keys CSRF tokens.
- ``signing.key``: Ed25519 private key (raw 32 bytes); signs tickets and installer
  packages, so agents can pin its public half.

A key is created on first use and never rotated silently: losing ``at-rest.key`` makes
every enrolled factor unusable, so backups must include the keys directory.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


def _read_or_create(path: Path, make: bytes | None = None, length: int = 32) -> bytes:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        data = make if make is not None else secrets.token_bytes(length)
        # O_EXCL: two processes starting together must not each write their own key.
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return path.read_bytes()
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        return data
    if len(data) != length:
        raise ValueError(f"{path} holds {len(data)} bytes, expected {length}")
    return data


@dataclass(frozen=True)
class Keys:
    at_rest: bytes
    cookie: bytes
    signing: Ed25519PrivateKey

    @classmethod
    def load(cls, directory: Path) -> Keys:
        at_rest = _read_or_create(directory / "at-rest.key")
        cookie = _read_or_create(directory / "cookie.key")
        signing_raw = _read_or_create(directory / "signing.key")
        return cls(at_rest, cookie, Ed25519PrivateKey.from_private_bytes(signing_raw))
