"""Password hashing (argon2id) and the password policy."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

MAX_LENGTH = 256


@dataclass(frozen=True, slots=True)
class HashCost:
    time_cost: int = 3
    memory_kib: int = 65536
    parallelism: int = 4


class Passwords:
    def __init__(self, cost: HashCost) -> None:
        self._hasher = PasswordHasher(
            time_cost=cost.time_cost,
            memory_cost=cost.memory_kib,
            parallelism=cost.parallelism,
            type=Type.ID,
        )
        # Verified against when the account does not exist, so an unknown name costs
        # the same time as a wrong password and the two cannot be told apart.
        self._dummy = self._hasher.hash("not a password of any account")

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    def verify(self, stored: str | None, password: str) -> bool:
        try:
            return self._hasher.verify(stored or self._dummy, password) and stored is not None
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, stored: str) -> bool:
        return self._hasher.check_needs_rehash(stored)


@cache
def _common_passwords() -> frozenset[str]:
    # zxcvbn ships the 30,000 most common passwords from public leaks; we use its list
    # rather than keeping our own copy.
    from zxcvbn.frequency_lists import FREQUENCY_LISTS

    return frozenset(FREQUENCY_LISTS["passwords"])


def policy_problems(
    password: str, *, min_length: int, username: str = "", email: str = ""
) -> list[str]:
    """Message keys (i18n/messages.toml) naming what is wrong; empty when acceptable."""
    problems: list[str] = []
    if len(password) < min_length:
        problems.append("password.too_short")
    if len(password) > MAX_LENGTH:
        problems.append("password.too_long")
    lowered = password.lower()
    if lowered in _common_passwords() or lowered.strip("0123456789!.") in _common_passwords():
        problems.append("password.too_common")
    if len(set(password)) < 5:
        problems.append("password.too_repetitive")
    for personal in (username, email.split("@")[0]):
        if personal and len(personal) >= 3 and personal.lower() in lowered:
            problems.append("password.contains_name")
            break
    return problems
