"""The login flow: password first, then a second factor; throttled and audited.

Every outcome, success or failure, writes its audit event in the same transaction as
the throttle counters and the session it creates. A refusal is raised marked
``recorded`` (``_kept``): its event and counters are what the request must keep, so
server/deps.get_db commits them; a page that catches one to show its form again commits
them itself.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from fjernhjelp.audit.log import Actor, Outcome, record
from fjernhjelp.auth import factors, logins, throttle
from fjernhjelp.auth.logins import ClientInfo, SessionPolicy
from fjernhjelp.auth.models import LoginSession, SessionKind, SessionStage, User, UserStatus
from fjernhjelp.auth.passwords import Passwords
from fjernhjelp.auth.throttle import ThrottleRule
from fjernhjelp.refusals import Refusal


@dataclass(frozen=True)
class LoginConfig:
    """What the login flow needs from the server's configuration and keys."""

    passwords: Passwords
    at_rest_key: bytes
    policy: SessionPolicy
    account_rule: ThrottleRule
    address_rule: ThrottleRule


class LoginRefused(Refusal):
    """Base of every login refusal; ``message`` is a key in the message catalogue.

    ``reason`` is what the audit log records and is never shown: the answer names
    ``message`` only, so an unknown user and a wrong password look the same.
    """

    status = 401
    message = "login.refused"

    def __init__(self, reason: str) -> None:
        super().__init__(reason)

    @property
    def answer_reason(self) -> str:
        return self.message

    @property
    def sentence_key(self) -> str:
        return self.message


def _kept(refusal: LoginRefused) -> LoginRefused:
    """Mark a refusal as recorded. Only what a refusal must leave behind is pending when
    one is raised: its audit event, the throttle counters (failures counted, stale ones
    forgotten), an expired login session ``logins.find`` removed, or the rehash of a
    password that was right."""
    refusal.recorded = True
    return refusal


class BadCredentials(LoginRefused):
    message = "login.bad_credentials"


class LockedOut(LoginRefused):
    status = 429
    message = "login.locked"

    def __init__(self, reason: str, until: datetime, now: datetime) -> None:
        super().__init__(reason)
        self.retry_after = max(1, int((until - now).total_seconds() + 0.999))
        self.params = {"minutes": max(1, (self.retry_after + 59) // 60)}


class AccountUnavailable(LoginRefused):
    """The password was right: from here on telling the user why is no oracle."""

    status = 403
    message = "login.account_unavailable"
    # The reasons a person can act on; the rest are told only as "unavailable".
    EXPLAINED = ("not_enrolled", "no_factor", "organisation_suspended")

    @property
    def sentence_key(self) -> str:
        if self.reason in self.EXPLAINED:
            return f"login.unavailable.{self.reason}"
        return self.message


class FactorRefused(LoginRefused):
    message = "login.factor_refused"


class LoginExpired(LoginRefused):
    message = "login.expired"


@dataclass(frozen=True, slots=True)
class Started:
    token: str
    session: LoginSession


def find_user(db: Session, username: str) -> User | None:
    return db.execute(
        select(User).where(func.lower(User.username) == username.strip().lower())
    ).scalar_one_or_none()


def _check_lock(
    db: Session, keys: list[str], now: datetime, actor: Actor, client: ClientInfo, step: str
) -> None:
    until = throttle.locked_until(db, keys, now)
    if until is not None:
        record(
            db,
            f"auth.login.{step}",
            Outcome.DENIED,
            actor=actor,
            reason="locked",
            source_address=client.source_address,
        )
        raise _kept(LockedOut("locked", until, now))


def _fail(
    db: Session,
    cfg: LoginConfig,
    username: str,
    client: ClientInfo,
    now: datetime,
    actor: Actor,
) -> None:
    account_lock = throttle.record_failure(
        db, throttle.account_key(username), cfg.account_rule, now
    )
    address_lock = throttle.record_failure(
        db, throttle.address_key(client.source_address), cfg.address_rule, now
    )
    for subject, until in (("account", account_lock), ("address", address_lock)):
        if until is not None:
            record(
                db,
                "auth.lockout",
                Outcome.INFO,
                actor=actor,
                reason=f"{subject}_failures",
                source_address=client.source_address,
                details={"subject": subject, "until": until.isoformat()},
            )


def begin(
    db: Session,
    cfg: LoginConfig,
    username: str,
    password: str,
    client: ClientInfo,
    now: datetime,
    kind: SessionKind = SessionKind.BROWSER,
) -> Started:
    """Check the password; on success a pending session waits for the second factor."""
    username = username.strip()[:150]
    keys = [throttle.account_key(username), throttle.address_key(client.source_address)]
    for key in keys:
        throttle.forget_stale(db, key, now)
    user = find_user(db, username)
    actor = Actor.of(user) if user else Actor.named(username)
    _check_lock(db, keys, now, actor, client, "password")

    if not cfg.passwords.verify(user.password_hash if user else None, password) or user is None:
        _fail(db, cfg, username, client, now, actor)
        record(
            db,
            "auth.login.password",
            Outcome.FAILURE,
            actor=actor,
            reason="wrong_password" if user else "unknown_user",
            source_address=client.source_address,
        )
        raise _kept(BadCredentials("wrong_password" if user else "unknown_user"))

    # The password was right: from here on telling the user why is no oracle.
    unavailable = _unavailable_reason(user)
    if unavailable:
        record(
            db,
            "auth.login.password",
            Outcome.DENIED,
            actor=actor,
            reason=unavailable,
            source_address=client.source_address,
        )
        raise _kept(AccountUnavailable(unavailable))
    if user.password_hash and cfg.passwords.needs_rehash(user.password_hash):
        user.password_hash = cfg.passwords.hash(password)
    if user.needs_second_factor and not user.confirmed_factors:
        record(
            db,
            "auth.login.password",
            Outcome.DENIED,
            actor=actor,
            reason="no_factor",
            source_address=client.source_address,
        )
        raise _kept(AccountUnavailable("no_factor"))

    token, row = logins.create(
        db,
        user,
        kind=kind,
        stage=SessionStage.PASSWORD_OK,
        client=client,
        policy=cfg.policy,
        now=now,
    )
    record(
        db,
        "auth.login.password",
        Outcome.SUCCESS,
        actor=actor,
        source_address=client.source_address,
        details={"session": str(row.id), "kind": str(kind)},
    )
    return Started(token, row)


def _unavailable_reason(user: User) -> str | None:
    if user.status == UserStatus.PENDING:
        return "not_enrolled"
    if user.status != UserStatus.ACTIVE:
        return f"user_{user.status}"
    if not user.organisation.is_active:
        return "organisation_suspended"
    return None


def pending_factor_kinds(user: User) -> list[str]:
    return sorted({f.kind for f in user.confirmed_factors})


def finish(
    db: Session,
    cfg: LoginConfig,
    pending_token: str,
    code: str,
    client: ClientInfo,
    now: datetime,
) -> Started:
    """Check the second factor; on success the pending session becomes a full one,
    under a new token (the pending token dies, so it cannot be fixed in advance)."""
    pending = logins.find(
        db, pending_token, policy=cfg.policy, now=now, stage=SessionStage.PASSWORD_OK
    )
    if pending is None:
        raise _kept(LoginExpired("pending_session_missing_or_expired"))
    user = pending.user
    actor = Actor.of(user)
    keys = [throttle.account_key(user.username), throttle.address_key(client.source_address)]
    _check_lock(db, keys, now, actor, client, "factor")

    try:
        accepted = factors.verify(db, cfg.at_rest_key, user, code, now.timestamp())
    except factors.FactorRejected as exc:
        _fail(db, cfg, user.username, client, now, actor)
        record(
            db,
            "auth.login.factor",
            Outcome.FAILURE,
            actor=actor,
            reason=exc.failure.value,
            source_address=client.source_address,
            factor=exc.factor_kind,
        )
        raise _kept(FactorRefused(exc.failure.value)) from exc

    for key in keys[:1]:
        throttle.reset(db, key)
    kind = SessionKind(pending.kind)
    logins.end(db, pending)
    token, row = logins.create(
        db,
        user,
        kind=kind,
        stage=SessionStage.COMPLETE,
        client=client,
        policy=cfg.policy,
        now=now,
        factor_kind=accepted.factor.kind,
    )
    user.last_login_at = now
    record(
        db,
        "auth.login.factor",
        Outcome.SUCCESS,
        actor=actor,
        source_address=client.source_address,
        factor=accepted.factor.kind,
        details={"session": str(row.id), "kind": str(kind), "factor_label": accepted.factor.label},
    )
    return Started(token, row)


def logout(db: Session, row: LoginSession, client: ClientInfo) -> None:
    user = row.user
    session_id: uuid.UUID = row.id
    logins.end(db, row)
    record(
        db,
        "auth.logout",
        Outcome.SUCCESS,
        actor=Actor.of(user),
        source_address=client.source_address,
        details={"session": str(session_id)},
    )
