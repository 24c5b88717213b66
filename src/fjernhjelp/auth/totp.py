"""TOTP (RFC 6238): SHA-1, 6 digits, 30-second steps, one step of drift either way.

Codes are computed by pyotp; what this module adds is *which* step matched, so the
caller can refuse any step at or before the last one accepted (a code works once).
"""

from __future__ import annotations

import hmac
import time
from urllib.parse import quote

import pyotp

STEP_SECONDS = 30
DIGITS = 6
DRIFT_STEPS = 1
ISSUER = "fjernhjelp"


def new_secret() -> str:
    """A 160-bit secret in base32, as RFC 4226 recommends for HMAC-SHA1."""
    return pyotp.random_base32(length=32)


def step_at(unix_time: float) -> int:
    return int(unix_time // STEP_SECONDS)


def code_at_step(secret: str, step: int) -> str:
    return pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS).at(step * STEP_SECONDS)


def matching_step(secret: str, code: str, now: float | None = None) -> int | None:
    """The time step whose code equals ``code`` within the drift window, or None."""
    code = code.strip().replace(" ", "")
    if len(code) != DIGITS or not code.isascii() or not code.isdigit():
        return None
    current = step_at(time.time() if now is None else now)
    found: int | None = None
    # Compare against every candidate (no early exit) so timing does not tell which.
    for step in range(current - DRIFT_STEPS, current + DRIFT_STEPS + 1):
        if hmac.compare_digest(code_at_step(secret, step), code):
            found = step
    return found


def provisioning_uri(secret: str, account: str) -> str:
    return pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS).provisioning_uri(
        name=account, issuer_name=ISSUER
    )


def format_secret(secret: str) -> str:
    """Groups of four, easier to type from a screen into an authenticator app."""
    return " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))


def account_label(username: str) -> str:
    return quote(username, safe="@._-")
