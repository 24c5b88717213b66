"""Grants: a customer lets one vendor reach one machine group, with named permissions."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import Boolean, Column, ForeignKey, Index, String, Table, Uuid
from sqlalchemy.orm import Mapped, mapped_column, relationship

from fjernhjelp.db.base import Base, UTCDateTime, new_id, utcnow
from fjernhjelp.portal.models.agreement import Agreement
from fjernhjelp.portal.models.group import MachineGroup
from fjernhjelp.portal.models.organisation import Organisation

if TYPE_CHECKING:
    from fjernhjelp.auth.models import User


class Permission(enum.StrEnum):
    VIEW = "view"
    CONTROL = "control"
    TERMINAL = "terminal"
    FILES = "files"
    CHAT = "chat"
    CLIPBOARD = "clipboard"  # both ways; only with control (portal.grants, agent.services)
    TERMINAL_ADMIN = "terminal_admin"


class GrantStatus(enum.StrEnum):
    ACTIVE = "active"
    REVOKED = "revoked"
    EXPIRED = "expired"  # expires_at passed; set (once) by the expiry sweep


grant_technicians = Table(
    "grant_technicians",
    Base.metadata,
    Column("grant_id", ForeignKey("grants.id", ondelete="CASCADE"), primary_key=True),
    Column("user_id", ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True),
)


class Grant(Base):
    __tablename__ = "grants"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    # customer and vendor repeat what group and agreement imply, so that "whose is
    # this" is one indexed comparison in every authorisation query.
    customer_org_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organisations.id", ondelete="RESTRICT"), index=True
    )
    vendor_org_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organisations.id", ondelete="RESTRICT"), index=True
    )
    group_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("machine_groups.id", ondelete="RESTRICT")
    )
    agreement_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("agreements.id", ondelete="RESTRICT"), index=True
    )
    may_view: Mapped[bool] = mapped_column(Boolean, default=False)
    may_control: Mapped[bool] = mapped_column(Boolean, default=False)
    may_terminal: Mapped[bool] = mapped_column(Boolean, default=False)
    may_files: Mapped[bool] = mapped_column(Boolean, default=False)
    may_chat: Mapped[bool] = mapped_column(Boolean, default=False)
    # Columns from migration 0004; each becomes a Permission (or, for packages, a grant
    # capability) where its feature is enforced.
    may_clipboard: Mapped[bool] = mapped_column(Boolean, default=False)
    may_terminal_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    may_make_packages: Mapped[bool] = mapped_column(Boolean, default=False)
    consent_required: Mapped[bool] = mapped_column(Boolean, default=True)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    status: Mapped[str] = mapped_column(String(16), default=GrantStatus.ACTIVE)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)

    group: Mapped[MachineGroup] = relationship(lazy="joined")
    agreement: Mapped[Agreement] = relationship(lazy="joined")
    customer: Mapped[Organisation] = relationship(foreign_keys=[customer_org_id], lazy="joined")
    vendor: Mapped[Organisation] = relationship(foreign_keys=[vendor_org_id], lazy="joined")
    # Empty means every technician of the vendor; otherwise only these.
    technicians: Mapped[list[User]] = relationship(
        secondary=grant_technicians, order_by="User.username", lazy="selectin"
    )

    __table_args__ = (Index("ix_grants_group_vendor", "group_id", "vendor_org_id"),)

    @property
    def permissions(self) -> frozenset[Permission]:
        return frozenset(p for p in Permission if getattr(self, f"may_{p.value}"))

    def set_permissions(self, permissions: frozenset[Permission]) -> None:
        for p in Permission:
            setattr(self, f"may_{p.value}", p in permissions)

    @property
    def preapproved(self) -> bool:
        return not self.consent_required

    def is_expired_at(self, now: datetime) -> bool:
        return self.status == GrantStatus.EXPIRED or (
            self.expires_at is not None and now >= self.expires_at
        )
