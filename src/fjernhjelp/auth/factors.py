"""Second factors: enrolling TOTP and YubiKeys, and checking a code once and only once."""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass

from sqlalchemy import and_, or_, update
from sqlalchemy.orm import Session

from fjernhjelp.auth import totp, yubico
from fjernhjelp.auth.models import Factor, FactorKind, User
from fjernhjelp.auth.sealing import seal, unseal
from fjernhjelp.db.base import utcnow
from fjernhjelp.db.dml import rows_matched


class FactorFailure(enum.StrEnum):
    WRONG_CODE = "wrong_code"
    REPLAYED = "replayed_code"
    UNKNOWN_KEY = "unknown_key"
    MALFORMED = "malformed_otp"
    NO_FACTOR = "no_factor"


class FactorRejected(Exception):
    def __init__(self, failure: FactorFailure, factor_kind: str | None) -> None:
        super().__init__(failure.value)
        self.failure = failure
        self.factor_kind = factor_kind


@dataclass(frozen=True, slots=True)
class Accepted:
    factor: Factor


def _context(user_id: object, kind: str) -> str:
    return f"factor/{kind}/{user_id}"


def looks_like_yubico(code: str) -> bool:
    code = code.strip().lower()
    return len(code) >= yubico.TOKEN_CHARS and all(c in yubico.MODHEX for c in code)


# -- enrolment -----------------------------------------------------------------


def start_totp(db: Session, at_rest_key: bytes, user: User, label: str) -> tuple[Factor, str]:
    """An unconfirmed TOTP factor and its secret; it counts only once a code confirms it."""
    secret = totp.new_secret()
    factor = Factor(
        user=user,
        kind=FactorKind.TOTP,
        label=label,
        secret_sealed=seal(at_rest_key, secret.encode(), _context(user.id, FactorKind.TOTP)),
        confirmed=False,
    )
    db.add(factor)
    db.flush()
    return factor, secret


def totp_secret(at_rest_key: bytes, factor: Factor) -> str:
    return unseal(at_rest_key, factor.secret_sealed, _context(factor.user_id, factor.kind)).decode()


def confirm_totp(db: Session, at_rest_key: bytes, factor: Factor, code: str) -> None:
    """Confirm a new TOTP factor with a first code, which is then spent like any other."""
    step = totp.matching_step(totp_secret(at_rest_key, factor), code)
    if step is None:
        raise FactorRejected(FactorFailure.WRONG_CODE, FactorKind.TOTP)
    factor.confirmed = True
    factor.last_totp_step = step
    factor.last_used_at = utcnow()
    db.flush()


def add_yubikey(
    db: Session,
    at_rest_key: bytes,
    user: User,
    label: str,
    aes_key: bytes,
    private_id: bytes,
    otp: str,
) -> Factor:
    """Enrol a YubiKey from its AES key and private id, proven by one fresh OTP."""
    try:
        public_id, token_part = yubico.split_otp(otp)
        token = yubico.decrypt_token(aes_key, private_id, token_part)
    except yubico.YubicoOTPError as exc:
        raise FactorRejected(FactorFailure.MALFORMED, FactorKind.YUBICO) from exc
    if not public_id:
        raise FactorRejected(FactorFailure.MALFORMED, FactorKind.YUBICO)
    factor = Factor(
        user=user,
        kind=FactorKind.YUBICO,
        label=label,
        public_id=public_id,
        secret_sealed=seal(at_rest_key, aes_key + private_id, _context(user.id, FactorKind.YUBICO)),
        confirmed=True,
        last_counter=token.counter,
        last_use=token.session_use,
        last_used_at=utcnow(),
    )
    db.add(factor)
    db.flush()
    return factor


# -- verification --------------------------------------------------------------


def verify(
    db: Session, at_rest_key: bytes, user: User, code: str, now: float | None = None
) -> Accepted:
    """Accept ``code`` for one of the user's confirmed factors, exactly once."""
    factors = user.confirmed_factors
    if not factors:
        raise FactorRejected(FactorFailure.NO_FACTOR, None)
    if looks_like_yubico(code):
        return _verify_yubico(db, at_rest_key, factors, code)
    return _verify_totp(db, at_rest_key, factors, code, now)


def _verify_totp(
    db: Session, at_rest_key: bytes, factors: list[Factor], code: str, now: float | None
) -> Accepted:
    candidates = [f for f in factors if f.kind == FactorKind.TOTP]
    if not candidates:
        raise FactorRejected(FactorFailure.WRONG_CODE, FactorKind.TOTP)
    now = time.time() if now is None else now
    replayed = False
    for factor in candidates:
        step = totp.matching_step(totp_secret(at_rest_key, factor), code, now)
        if step is None:
            continue
        # Compare-and-set in one statement: of two logins racing with the same code,
        # exactly one moves the step forward.
        moved = rows_matched(
            db,
            update(Factor)
            .where(
                Factor.id == factor.id,
                or_(Factor.last_totp_step.is_(None), Factor.last_totp_step < step),
            )
            .values(last_totp_step=step, last_used_at=utcnow())
            .execution_options(synchronize_session=False),
        )
        if moved == 1:
            db.refresh(factor)
            return Accepted(factor)
        replayed = True
    raise FactorRejected(
        FactorFailure.REPLAYED if replayed else FactorFailure.WRONG_CODE, FactorKind.TOTP
    )


def _verify_yubico(db: Session, at_rest_key: bytes, factors: list[Factor], otp: str) -> Accepted:
    try:
        public_id, token_part = yubico.split_otp(otp)
    except yubico.YubicoOTPError as exc:
        raise FactorRejected(FactorFailure.MALFORMED, FactorKind.YUBICO) from exc
    factor = next(
        (f for f in factors if f.kind == FactorKind.YUBICO and f.public_id == public_id), None
    )
    if factor is None:
        raise FactorRejected(FactorFailure.UNKNOWN_KEY, FactorKind.YUBICO)
    secret = unseal(at_rest_key, factor.secret_sealed, _context(factor.user_id, factor.kind))
    try:
        token = yubico.decrypt_token(secret[:16], secret[16:], token_part)
    except yubico.YubicoOTPError as exc:
        raise FactorRejected(FactorFailure.WRONG_CODE, FactorKind.YUBICO) from exc
    counter, use = token.position()
    moved = rows_matched(
        db,
        update(Factor)
        .where(
            Factor.id == factor.id,
            or_(
                Factor.last_counter.is_(None),
                Factor.last_counter < counter,
                and_(Factor.last_counter == counter, Factor.last_use < use),
            ),
        )
        .values(last_counter=counter, last_use=use, last_used_at=utcnow())
        .execution_options(synchronize_session=False),
    )
    if moved != 1:
        raise FactorRejected(FactorFailure.REPLAYED, FactorKind.YUBICO)
    db.refresh(factor)
    return Accepted(factor)
