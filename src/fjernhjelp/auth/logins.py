"""Browser and API sessions: creation, lookup with idle and absolute expiry, ending."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from fjernhjelp.auth.models import LoginSession, SessionKind, SessionStage, User, UserStatus
from fjernhjelp.auth.tokens import new_token, token_hash
from fjernhjelp.db.dml import rows_matched

# last_seen_at is written at most this often, so a page full of requests costs one write.
TOUCH_EVERY = timedelta(seconds=30)


@dataclass(frozen=True, slots=True)
class SessionPolicy:
    idle: timedelta
    absolute: timedelta
    pending: timedelta  # between password and second factor


@dataclass(frozen=True, slots=True)
class ClientInfo:
    source_address: str | None = None
    user_agent: str | None = None


def create(
    db: Session,
    user: User,
    *,
    kind: SessionKind,
    stage: SessionStage,
    client: ClientInfo,
    policy: SessionPolicy,
    now: datetime,
    factor_kind: str | None = None,
) -> tuple[str, LoginSession]:
    token = new_token()
    lifetime = policy.pending if stage is SessionStage.PASSWORD_OK else policy.absolute
    row = LoginSession(
        token_hash=token_hash(token),
        user=user,
        kind=kind,
        stage=stage,
        factor_kind=factor_kind,
        created_at=now,
        last_seen_at=now,
        expires_at=now + lifetime,
        source_address=client.source_address,
        user_agent=(client.user_agent or "")[:300] or None,
    )
    db.add(row)
    db.flush()
    return token, row


def find(
    db: Session,
    token: str | None,
    *,
    policy: SessionPolicy,
    now: datetime,
    stage: SessionStage = SessionStage.COMPLETE,
) -> LoginSession | None:
    """The live session for ``token`` at ``stage``, or None. Expired rows are removed."""
    if not token or len(token) > 128:
        return None
    row = db.execute(
        select(LoginSession).where(LoginSession.token_hash == token_hash(token))
    ).scalar_one_or_none()
    if row is None or row.stage != stage:
        return None
    idle_out = stage is SessionStage.COMPLETE and now - row.last_seen_at > policy.idle
    if now >= row.expires_at or idle_out:
        db.delete(row)
        db.flush()
        return None
    user = row.user
    if user.status != UserStatus.ACTIVE or not user.organisation.is_active:
        return None
    if now - row.last_seen_at > TOUCH_EVERY:
        row.last_seen_at = now
    return row


def end(db: Session, row: LoginSession) -> None:
    db.delete(row)
    db.flush()


def end_all_for_user(db: Session, user_id: object) -> int:
    return rows_matched(db, delete(LoginSession).where(LoginSession.user_id == user_id))


def end_others_for_user(db: Session, user_id: object, keep: object | None) -> int:
    stmt = delete(LoginSession).where(LoginSession.user_id == user_id)
    if keep is not None:
        stmt = stmt.where(LoginSession.id != keep)
    return rows_matched(db, stmt)


def purge_expired(db: Session, now: datetime) -> int:
    return rows_matched(db, delete(LoginSession).where(LoginSession.expires_at <= now))
