"""Organisations: who receives help, who gives it, and the policy the operator sets."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import Boolean, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from fjernhjelp.db.base import Base, UTCDateTime, new_id, utcnow


class OrgKind(enum.StrEnum):
    GP_OFFICE = "gp_office"
    DENTIST = "dentist"
    MUNICIPALITY = "municipality"
    HOSPITAL = "hospital"
    VENDOR = "vendor"
    OTHER = "other"


class OrgStatus(enum.StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"


class Organisation(Base):
    __tablename__ = "organisations"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    orgnr: Mapped[str] = mapped_column(String(9), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(20))
    receives_help: Mapped[bool] = mapped_column(Boolean, default=False)
    gives_help: Mapped[bool] = mapped_column(Boolean, default=False)
    # Policy: whether installed agents (Access) may be used at all. Municipalities get
    # Support only until the operator turns this on; see default_access_enabled().
    access_enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    status: Mapped[str] = mapped_column(String(16), default=OrgStatus.ACTIVE)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    @property
    def is_active(self) -> bool:
        return self.status == OrgStatus.ACTIVE


def default_access_enabled(kind: OrgKind) -> bool:
    return kind is not OrgKind.MUNICIPALITY
