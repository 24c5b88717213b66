"""What a signed-in person does to their own account: add and remove second factors,
change the password.

Every function acts for ``caller.user`` only and audits under the events the account
page has always written (``account.factor.added``, ``account.factor.removed``,
``account.password.changed``). A refusal is raised as a ``Refusal`` whose reason is the
catalogue key the page shows; the caller commits in both cases, so a refusal's event
stays. Refusals that only correct a form (a factor id that is not the person's, the last
factor, malformed YubiKey secrets, a key already enrolled, a weak new password) are not
audited: nothing was tried against a secret.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from fjernhjelp.audit.log import Outcome, record
from fjernhjelp.auth import factors, logins, yubico
from fjernhjelp.auth.models import Factor, FactorKind
from fjernhjelp.auth.passwords import Passwords, policy_problems
from fjernhjelp.caller import Caller
from fjernhjelp.refusals import Refusal


class FactorRefused(Refusal):
    """A second factor the person may not add (wrong code, bad key) or touch."""


class FactorNotFound(FactorRefused):
    """The factor id is unknown, or another person's: both answer the same."""

    status = 404

    def __init__(self) -> None:
        super().__init__("factor.not_found")


class LastFactorKept(FactorRefused):
    """Removing it would leave an account that needs a second factor without one."""

    status = 409

    def __init__(self) -> None:
        super().__init__("factor.last_one")


class PasswordRefused(Refusal):
    """The new password is not taken. ``reason`` is the first problem; the page shows
    every one of ``problems`` (all catalogue keys)."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__(problems[0])
        self.problems = tuple(problems)


@dataclass(frozen=True, slots=True)
class PendingTotp:
    """An unconfirmed TOTP factor and its secret, shown as a QR code until confirmed."""

    factor: Factor
    secret: str


def _own_factor(db: Session, caller: Caller, factor_id: uuid.UUID) -> Factor:
    factor = db.get(Factor, factor_id)
    # Someone else's factor id answers exactly like one that does not exist.
    if factor is None or factor.user_id != caller.user.id:
        raise FactorNotFound()
    return factor


# -- TOTP --------------------------------------------------------------------------


def start_totp(db: Session, caller: Caller, at_rest_key: bytes, label: str) -> PendingTotp:
    """A new, unconfirmed TOTP factor; it counts only once a code confirms it."""
    factor, secret = factors.start_totp(db, at_rest_key, caller.user, label.strip() or "TOTP")
    return PendingTotp(factor, secret)


def pending_totp(
    db: Session, caller: Caller, at_rest_key: bytes, factor_id: uuid.UUID
) -> PendingTotp:
    """The person's own TOTP factor still waiting for its first code."""
    factor = _own_factor(db, caller, factor_id)
    # A confirmed factor or a YubiKey has nothing to confirm: as if it were not there.
    if factor.confirmed or factor.kind != FactorKind.TOTP:
        raise FactorNotFound()
    return PendingTotp(factor, factors.totp_secret(at_rest_key, factor))


def confirm_totp(
    db: Session, caller: Caller, at_rest_key: bytes, factor_id: uuid.UUID, code: str
) -> Factor:
    """Confirm a pending TOTP factor with a code from the app. A wrong code is audited
    and refused with ``factor.wrong_code``; the factor stays pending for another try."""
    user = caller.user
    factor = pending_totp(db, caller, at_rest_key, factor_id).factor
    try:
        factors.confirm_totp(db, at_rest_key, factor, code)
    except factors.FactorRejected as exc:
        record(
            db,
            "account.factor.added",
            Outcome.FAILURE,
            actor=caller.actor,
            reason=exc.failure.value,
            factor="totp",
            source_address=caller.source_address,
        )
        raise FactorRefused("factor.wrong_code") from exc
    record(
        db,
        "account.factor.added",
        Outcome.SUCCESS,
        actor=caller.actor,
        factor="totp",
        customer_org_id=user.organisation_id,
        source_address=caller.source_address,
        details={"factor": str(factor.id), "label": factor.label},
    )
    return factor


# -- YubiKey -----------------------------------------------------------------------


def add_yubikey(
    db: Session,
    caller: Caller,
    at_rest_key: bytes,
    *,
    label: str,
    aes_key_hex: str,
    private_id_hex: str,
    otp: str,
) -> Factor:
    """Enrol a YubiKey from its secrets (hex, as the personalisation tool shows them),
    proven by one fresh OTP. An OTP the secrets do not explain is audited and refused
    with ``factor.yubikey_rejected``."""
    user = caller.user
    try:
        aes_key, private_id = yubico.parse_secret(aes_key_hex, private_id_hex)
    except yubico.YubicoSecretError as exc:
        raise FactorRefused("factor.yubikey_bad_secret") from exc
    public_id = yubico.public_id_of(otp)
    taken = db.execute(select(Factor.id).where(Factor.public_id == public_id)).first()
    if taken is not None:
        raise FactorRefused("factor.yubikey_taken")
    # A savepoint, so a rejected OTP leaves nothing of the attempt but its event.
    attempt = db.begin_nested()
    try:
        factor = factors.add_yubikey(
            db, at_rest_key, user, label.strip() or "YubiKey", aes_key, private_id, otp
        )
    except factors.FactorRejected as exc:
        attempt.rollback()
        record(
            db,
            "account.factor.added",
            Outcome.FAILURE,
            actor=caller.actor,
            reason=exc.failure.value,
            factor="yubico",
            source_address=caller.source_address,
        )
        raise FactorRefused("factor.yubikey_rejected") from exc
    attempt.commit()
    record(
        db,
        "account.factor.added",
        Outcome.SUCCESS,
        actor=caller.actor,
        factor="yubico",
        customer_org_id=user.organisation_id,
        source_address=caller.source_address,
        details={"factor": str(factor.id), "label": factor.label, "public_id": public_id},
    )
    return factor


# -- removing ----------------------------------------------------------------------


def remove_factor(db: Session, caller: Caller, factor_id: uuid.UUID) -> None:
    """Remove one of the person's factors, unless it is the last confirmed one of an
    account that must have a second factor (``LastFactorKept``)."""
    user = caller.user
    factor = _own_factor(db, caller, factor_id)
    if factor.confirmed and len(user.confirmed_factors) <= 1 and user.needs_second_factor:
        raise LastFactorKept()
    details = {"factor": str(factor.id), "label": factor.label, "kind": factor.kind}
    user.factors.remove(factor)
    record(
        db,
        "account.factor.removed",
        Outcome.SUCCESS,
        actor=caller.actor,
        customer_org_id=user.organisation_id,
        source_address=caller.source_address,
        details=details,
    )
    db.flush()


# -- password ----------------------------------------------------------------------


def change_password(
    db: Session,
    caller: Caller,
    passwords: Passwords,
    *,
    current: str,
    new: str,
    new_again: str,
    min_length: int,
    keep_session: uuid.UUID | None,
) -> int:
    """Set a new password, proven by the current one, and end every other login of the
    person (``keep_session`` is the one asking). Returns how many were ended. A wrong
    current password is audited and refused with ``password.wrong_current``."""
    user = caller.user
    if not passwords.verify(user.password_hash, current):
        record(
            db,
            "account.password.changed",
            Outcome.FAILURE,
            actor=caller.actor,
            reason="wrong_password",
            source_address=caller.source_address,
        )
        raise PasswordRefused(["password.wrong_current"])
    problems = policy_problems(new, min_length=min_length, username=user.username, email=user.email)
    if new != new_again:
        problems.append("password.mismatch")
    if problems:
        raise PasswordRefused(problems)
    user.password_hash = passwords.hash(new)
    user.password_changed_at = caller.now
    # Whoever else was logged in with the old password is logged out.
    ended = logins.end_others_for_user(db, user.id, keep=keep_session)
    record(
        db,
        "account.password.changed",
        Outcome.SUCCESS,
        actor=caller.actor,
        customer_org_id=user.organisation_id,
        source_address=caller.source_address,
        details={"other_sessions_ended": ended},
    )
    return ended
