"""Norwegian organisation numbers (organisasjonsnummer).

Nine digits; the last is a modulus-11 check digit over the first eight with weights
3, 2, 7, 6, 5, 4, 3, 2. A remainder of 1 gives no valid number (Brønnøysundregistrene
never assigns it), a remainder of 0 gives check digit 0.
"""

from __future__ import annotations

_WEIGHTS = (3, 2, 7, 6, 5, 4, 3, 2)


class InvalidOrgnr(ValueError):
    def __init__(self, value: str, reason: str) -> None:
        super().__init__(f"invalid organisation number {value!r}: {reason}")
        self.value = value
        self.reason = reason


def check_digit(first_eight: str) -> int | None:
    remainder = sum(int(d) * w for d, w in zip(first_eight, _WEIGHTS, strict=True)) % 11
    if remainder == 0:
        return 0
    if remainder == 1:
        return None
    return 11 - remainder


def normalise_orgnr(value: str) -> str:
    """Return the nine digits of ``value`` (spaces allowed) or raise InvalidOrgnr."""
    digits = value.replace(" ", "").strip()
    if len(digits) != 9 or not digits.isascii() or not digits.isdigit():
        raise InvalidOrgnr(value, "must be nine digits")
    if digits[0] not in "89":
        raise InvalidOrgnr(value, "must start with 8 or 9")
    expected = check_digit(digits[:8])
    if expected is None or expected != int(digits[8]):
        raise InvalidOrgnr(value, "check digit does not match")
    return digits
