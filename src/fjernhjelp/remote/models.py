"""Remote sessions, Access and Support: one row per session the server authorised.

An Access session reaches an enrolled machine through a grant; a Support session reaches
a person who joins with a one-time code (remote/support.py). Both kinds share the row
(migration 0010 says why), so history and revocation treat them alike."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, LargeBinary, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column, relationship

from fjernhjelp.auth.models import User
from fjernhjelp.db.base import Base, UTCDateTime, new_id, utcnow
from fjernhjelp.machines.models import Machine


class SessionKind(enum.StrEnum):
    ACCESS = "access"  # an enrolled machine, under a grant
    SUPPORT = "support"  # a person who joined with a one-time code


class SessionStatus(enum.StrEnum):
    WAITING = "waiting"  # Support: the code is made, nobody has entered it yet
    JOINED = "joined"  # Support: the end user entered the code; the tunnel comes next
    REQUESTED = "requested"  # ticket issued, waiting for both ends at the relay
    ACTIVE = "active"  # both ends paired at the relay
    ENDED = "ended"


class RemoteSession(Base):
    """One tunnel between a technician and a machine; the server never sees inside."""

    __tablename__ = "remote_sessions"
    __table_args__ = (Index("ix_remote_sessions_kind", "kind", "status"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    kind: Mapped[str] = mapped_column(
        String(10), default=SessionKind.ACCESS, server_default=SessionKind.ACCESS.value
    )
    # None for Support: it reaches a person, not an enrolled machine in a group.
    machine_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("machines.id", ondelete="RESTRICT"), index=True
    )
    technician_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="RESTRICT"), index=True
    )
    vendor_org_id: Mapped[uuid.UUID] = mapped_column(Uuid, index=True)
    customer_org_id: Mapped[uuid.UUID] = mapped_column(Uuid, index=True)
    group_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    grant_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, index=True)
    # Support: the agreement that allowed it (Access names its grant instead).
    agreement_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, default=None)
    permissions: Mapped[str] = mapped_column(String(100))  # comma-separated
    consent_required: Mapped[bool] = mapped_column(Boolean)
    status: Mapped[str] = mapped_column(String(16), default=SessionStatus.REQUESTED)
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    end_reason: Mapped[str | None] = mapped_column(String(120), default=None)
    # One-time relay tokens, one per end, stored as SHA-256 only; a Support session
    # gets them (and its node) when its tunnel is asked for.
    technician_token_hash: Mapped[bytes | None] = mapped_column(LargeBinary(32))
    agent_token_hash: Mapped[bytes | None] = mapped_column(LargeBinary(32))
    node_id: Mapped[str | None] = mapped_column(String(64))
    bytes_from_technician: Mapped[int] = mapped_column(BigInteger, default=0)
    bytes_from_agent: Mapped[int] = mapped_column(BigInteger, default=0)

    # Support's one-time code, never in clear: HMAC-SHA256 under the server's code key
    # (remote/support.py). Spent by the one UPDATE that sets code_used_at.
    code_digest: Mapped[bytes | None] = mapped_column(LargeBinary(32), index=True, default=None)
    code_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    code_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    joined_from: Mapped[str | None] = mapped_column(String(64), default=None)
    # What the end user's one-time client presents, as SHA-256.
    end_user_token_hash: Mapped[bytes | None] = mapped_column(LargeBinary(32), default=None)
    # The client's in-memory Ed25519 key, recorded at its first control-link login
    # (migration 0011): the token opens the link only for this key from then on.
    client_public_key: Mapped[bytes | None] = mapped_column(LargeBinary(32), default=None)
    # How the end user's end joined (migration 0014): "client", the one-time client, or
    # "browser", the start page sharing its screen (no remote control then).
    client_way: Mapped[str | None] = mapped_column(String(16), default=None)
    # When the technician asked for the tunnel: the relay tokens expire from then.
    tunnel_requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)

    machine: Mapped[Machine | None] = relationship(lazy="joined")
    technician: Mapped[User] = relationship(lazy="joined")

    @property
    def is_support(self) -> bool:
        return self.kind == SessionKind.SUPPORT

    @property
    def permission_list(self) -> list[str]:
        return [p for p in self.permissions.split(",") if p]
