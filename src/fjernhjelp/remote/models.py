"""Remote sessions (Access, and Support to come): one row per tunnel the server authorised."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import BigInteger, Boolean, ForeignKey, LargeBinary, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column, relationship

from fjernhjelp.auth.models import User
from fjernhjelp.db.base import Base, UTCDateTime, new_id, utcnow
from fjernhjelp.machines.models import Machine


class SessionStatus(enum.StrEnum):
    REQUESTED = "requested"  # ticket issued, waiting for both ends at the relay
    ACTIVE = "active"  # both ends paired at the relay
    ENDED = "ended"


class RemoteSession(Base):
    """One tunnel between a technician and a machine; the server never sees inside."""

    __tablename__ = "remote_sessions"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    machine_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("machines.id", ondelete="RESTRICT"), index=True
    )
    technician_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="RESTRICT"), index=True
    )
    vendor_org_id: Mapped[uuid.UUID] = mapped_column(Uuid, index=True)
    customer_org_id: Mapped[uuid.UUID] = mapped_column(Uuid, index=True)
    group_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    grant_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, index=True)
    permissions: Mapped[str] = mapped_column(String(100))  # comma-separated
    consent_required: Mapped[bool] = mapped_column(Boolean)
    status: Mapped[str] = mapped_column(String(16), default=SessionStatus.REQUESTED)
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    end_reason: Mapped[str | None] = mapped_column(String(120), default=None)
    # One-time relay tokens, one per end, stored as SHA-256 only.
    technician_token_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    agent_token_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    node_id: Mapped[str] = mapped_column(String(64))
    bytes_from_technician: Mapped[int] = mapped_column(BigInteger, default=0)
    bytes_from_agent: Mapped[int] = mapped_column(BigInteger, default=0)

    machine: Mapped[Machine] = relationship(lazy="joined")
    technician: Mapped[User] = relationship(lazy="joined")

    @property
    def permission_list(self) -> list[str]:
        return [p for p in self.permissions.split(",") if p]
