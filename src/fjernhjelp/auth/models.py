"""Users, their second factors, login sessions, enrolment links and throttle counters."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Uuid,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from fjernhjelp.db.base import Base, UTCDateTime, new_id, utcnow
from fjernhjelp.portal.models import Organisation


class UserStatus(enum.StrEnum):
    PENDING = "pending"  # invited; has not set a password and a factor yet
    ACTIVE = "active"
    DISABLED = "disabled"  # deactivated by an admin or for inactivity
    SUSPENDED = "suspended"  # stopped by the operator


class FactorKind(enum.StrEnum):
    TOTP = "totp"
    YUBICO = "yubico"


class SessionStage(enum.StrEnum):
    PASSWORD_OK = "password_ok"  # noqa: S105 (a stage name, not a password); waiting for the second factor
    COMPLETE = "complete"


class SessionKind(enum.StrEnum):
    BROWSER = "browser"
    API = "api"


class User(Base):
    __tablename__ = "users"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    organisation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organisations.id", ondelete="RESTRICT"), index=True
    )
    username: Mapped[str] = mapped_column(String(64), unique=True)
    email: Mapped[str] = mapped_column(String(254))
    display_name: Mapped[str] = mapped_column(String(200))
    is_operator: Mapped[bool] = mapped_column(Boolean, default=False)
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    is_technician: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(16), default=UserStatus.PENDING)
    password_hash: Mapped[str | None] = mapped_column(String(255), default=None)
    password_changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    language: Mapped[str | None] = mapped_column(String(5), default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    # When status last changed (suspended, deactivated, reactivated): reactivating
    # restarts the inactivity clock, so the next sweep does not undo it at once.
    status_changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    # A technician working from outside the EU/EEA may connect only under an
    # agreement that allows it (portal/access.py).
    outside_eea: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())

    organisation: Mapped[Organisation] = relationship(lazy="joined")
    factors: Mapped[list[Factor]] = relationship(
        back_populates="user", order_by="Factor.created_at", cascade="all, delete-orphan"
    )

    @property
    def needs_second_factor(self) -> bool:
        # Every account that can give help or administer must have one; in this
        # product that is every account, but the rule is written out so a future
        # read-only role does not silently inherit it.
        return self.is_operator or self.is_admin or self.is_technician

    @property
    def confirmed_factors(self) -> list[Factor]:
        return [f for f in self.factors if f.confirmed]

    @property
    def roles(self) -> list[str]:
        return [
            name
            for name, held in (
                ("operator", self.is_operator),
                ("admin", self.is_admin),
                ("technician", self.is_technician),
            )
            if held
        ]


class Factor(Base):
    __tablename__ = "factors"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(16))
    label: Mapped[str] = mapped_column(String(100))
    # TOTP: the shared secret; Yubico: AES key (16 bytes) || private id (6 bytes).
    # Sealed with the server's at-rest key (auth/sealing.py), never stored in clear.
    secret_sealed: Mapped[bytes] = mapped_column(LargeBinary)
    # Yubico public id (modhex), so an OTP finds its key without trying them all.
    public_id: Mapped[str | None] = mapped_column(String(32), unique=True, default=None)
    confirmed: Mapped[bool] = mapped_column(Boolean, default=False)
    # Replay protection: the last accepted TOTP time step, or Yubico (counter, use).
    last_totp_step: Mapped[int | None] = mapped_column(BigInteger, default=None)
    last_counter: Mapped[int | None] = mapped_column(Integer, default=None)
    last_use: Mapped[int | None] = mapped_column(Integer, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)

    user: Mapped[User] = relationship(back_populates="factors")


class LoginSession(Base):
    """A browser or API session. Only the SHA-256 of its token is stored."""

    __tablename__ = "login_sessions"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    token_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(16), default=SessionKind.BROWSER)
    stage: Mapped[str] = mapped_column(String(16), default=SessionStage.PASSWORD_OK)
    factor_kind: Mapped[str | None] = mapped_column(String(16), default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    source_address: Mapped[str | None] = mapped_column(String(64), default=None)
    user_agent: Mapped[str | None] = mapped_column(String(300), default=None)

    user: Mapped[User] = relationship(lazy="joined")


class EnrolmentLink(Base):
    """A one-time link to set a password and enrol a factor. Only its hash is stored."""

    __tablename__ = "enrolment_links"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    token_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    # Who asked for it (an account name, or "command-line"): told to the person when
    # the link replaced the factors of an account that was already active.
    issued_by: Mapped[str | None] = mapped_column(String(200), default=None)

    user: Mapped[User] = relationship(lazy="joined")


class Throttle(Base):
    """Failure counter for one login subject: an account name or a source address."""

    __tablename__ = "throttles"

    key: Mapped[str] = mapped_column(String(160), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    last_failure_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
