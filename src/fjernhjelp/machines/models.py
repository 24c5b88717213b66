"""Machines with installed agents and the installer packages that enrol them."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Integer, LargeBinary, String, Text, Uuid
from sqlalchemy.orm import Mapped, mapped_column, relationship

from fjernhjelp.auth.models import User
from fjernhjelp.db.base import Base, UTCDateTime, new_id, utcnow
from fjernhjelp.portal.models.group import MachineGroup
from fjernhjelp.portal.models.organisation import Organisation


class MachineStatus(enum.StrEnum):
    ACTIVE = "active"
    REVOKED = "revoked"  # removed by an admin: its key is refused from then on


class InstallerPackage(Base):
    """A package generated for one group; its enrolment token is stored as a hash only."""

    __tablename__ = "installer_packages"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    group_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("machine_groups.id", ondelete="RESTRICT"), index=True
    )
    organisation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organisations.id", ondelete="RESTRICT"), index=True
    )
    label: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    created_by_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    # The grant a vendor's technician made it under (None: the customer's own admin); the
    # package enrols machines only while that grant lives and lets the vendor make them.
    grant_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("grants.id", ondelete="RESTRICT"), index=True, default=None
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    max_uses: Mapped[int] = mapped_column(Integer)
    uses: Mapped[int] = mapped_column(Integer, default=0)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)

    group: Mapped[MachineGroup] = relationship(lazy="joined")
    created_by: Mapped[User] = relationship(lazy="joined")

    def usable_at(self, now: datetime) -> str | None:
        """None when the token may enrol one more machine, else why not."""
        if self.revoked_at is not None:
            return "package_revoked"
        if now >= self.expires_at:
            return "package_expired"
        if self.uses >= self.max_uses:
            return "package_used_up"
        return None


class Machine(Base):
    __tablename__ = "machines"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    organisation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organisations.id", ondelete="RESTRICT"), index=True
    )
    group_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("machine_groups.id", ondelete="RESTRICT"), index=True
    )
    package_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("installer_packages.id", ondelete="SET NULL"), default=None
    )
    # The agent's Ed25519 identity key; one machine per key, a reused key is refused.
    identity_public_key: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    hostname: Mapped[str] = mapped_column(String(255))
    os: Mapped[str] = mapped_column(String(255), default="")
    agent_version: Mapped[str] = mapped_column(String(32), default="")
    users: Mapped[str] = mapped_column(Text, default="")  # logged-in users, comma-separated
    has_display: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(16), default=MachineStatus.ACTIVE)
    enrolled_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)

    organisation: Mapped[Organisation] = relationship(lazy="joined")
    group: Mapped[MachineGroup] = relationship(lazy="joined")
