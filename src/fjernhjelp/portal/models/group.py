"""Machine groups: a receiving organisation's machines, the unit a vendor is granted."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, String, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column, relationship

from fjernhjelp.db.base import Base, UTCDateTime, new_id, utcnow
from fjernhjelp.portal.models.organisation import Organisation


class MachineGroup(Base):
    __tablename__ = "machine_groups"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    organisation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organisations.id", ondelete="RESTRICT"), index=True
    )
    name: Mapped[str] = mapped_column(String(100))
    # Every receiving organisation has exactly one; it cannot be deleted, so an
    # installer package always has somewhere to put a machine.
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    organisation: Mapped[Organisation] = relationship(lazy="joined")

    __table_args__ = (UniqueConstraint("organisation_id", "name"),)
