"""The Support code itself: made, read back from what people type, and kept only as a MAC.

Digits only, at least ``MIN_DIGITS``, from ``secrets``; shown and read over the telephone
in groups of three; stored as HMAC-SHA256 under a key derived from the server's at-rest
key (remote/support.py says why). Pure functions, no database: the sessions the codes
open live in remote/support.py.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

MIN_DIGITS = 9
# Longest text accepted as a code before normalising: anything longer is malformed
# without being looked at.
_MAX_TYPED = 64
# Spaces and dashes people type or paste between the groups (no-break and thin spaces,
# hyphen, en and em dash, minus sign).
_SEPARATORS = str.maketrans("", "", " \t\u00a0\u2009\u202f-\u2010\u2011\u2012\u2013\u2014\u2212")


def code_key(at_rest_key: bytes) -> bytes:
    """The code key: derived from the at-rest key, so it lives (and is backed up) with the
    server's other keys, and no other use of that key can produce the same MAC."""
    return hmac.new(at_rest_key, b"fjernhjelp support code key v1", hashlib.sha256).digest()


def new_code(digits: int) -> str:
    return "".join(secrets.choice("0123456789") for _ in range(max(MIN_DIGITS, digits)))


def normalise(typed: str) -> str | None:
    """The code's digits, or None if what was typed cannot be a code."""
    if len(typed) > _MAX_TYPED:
        return None
    digits = typed.strip().translate(_SEPARATORS)
    # isascii: str.isdigit also takes other scripts' digits (and superscripts).
    if not (digits.isascii() and digits.isdigit()) or not MIN_DIGITS <= len(digits) <= 18:
        return None
    return digits


def grouped(code: str) -> str:
    """ "482193775" -> "482 193 775": read over the telephone in threes."""
    return " ".join(code[i : i + 3] for i in range(0, len(code), 3))


def code_digest(key: bytes, code: str) -> bytes:
    return hmac.new(key, b"support-code\x00" + code.encode(), hashlib.sha256).digest()


__all__ = ["MIN_DIGITS", "code_digest", "code_key", "grouped", "new_code", "normalise"]
