"""Unpadded base64url (RFC 4648 section 5), strict on input.

The standard library decoder silently skips characters outside the alphabet and accepts
non-zero trailing bits; a signed token must have exactly one spelling, so this checks
both.
"""

from __future__ import annotations

import base64
import re

_ALPHABET = re.compile(r"[A-Za-z0-9_-]*")


def encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def decode(text: str) -> bytes:
    """Decode unpadded base64url; ValueError for anything that is not its canonical form."""
    if not _ALPHABET.fullmatch(text) or len(text) % 4 == 1:
        raise ValueError("not unpadded base64url")
    data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if encode(data) != text:
        raise ValueError("non-canonical base64url")
    return data
