"""Agreements between a receiving organisation and a vendor: what every grant rests on."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, String, Text, Uuid
from sqlalchemy.orm import Mapped, mapped_column, relationship

from fjernhjelp.db.base import Base, UTCDateTime, new_id, utcnow
from fjernhjelp.portal.models.organisation import Organisation


class AgreementKind(enum.StrEnum):
    REMOTE_SUPPORT = "remote_support"  # fjernaksessavtale / avtale om fjernhjelp
    DATA_PROCESSING = "data_processing"  # databehandleravtale


class AgreementCovers(enum.StrEnum):
    """Which kinds of remote assistance the agreement lets the vendor give."""

    ACCESS = "access"  # through installed agents, under grants on machine groups
    SUPPORT = "support"  # one-time sessions joined with a code
    BOTH = "both"

    @property
    def access(self) -> bool:
        return self in (AgreementCovers.ACCESS, AgreementCovers.BOTH)

    @property
    def support(self) -> bool:
        return self in (AgreementCovers.SUPPORT, AgreementCovers.BOTH)


class AgreementStatus(enum.StrEnum):
    ACTIVE = "active"
    REVOKED = "revoked"  # ended early by the customer
    EXPIRED = "expired"  # valid_until passed; set (once) by the expiry sweep


class Agreement(Base):
    __tablename__ = "agreements"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    customer_org_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organisations.id", ondelete="RESTRICT"), index=True
    )
    vendor_org_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organisations.id", ondelete="RESTRICT"), index=True
    )
    kind: Mapped[str] = mapped_column(String(20))
    covers: Mapped[str] = mapped_column(
        String(10), default=AgreementCovers.ACCESS, server_default=AgreementCovers.ACCESS.value
    )
    reference: Mapped[str] = mapped_column(String(100))
    valid_from: Mapped[datetime] = mapped_column(UTCDateTime)
    # None: until revoked. Grants under an agreement with an end expire no later.
    valid_until: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    # Pre-approved (unattended) access is lawful only where the agreement says so;
    # the clause is kept verbatim so an auditor can read what allowed it.
    allows_preapproved: Mapped[bool] = mapped_column(Boolean, default=False)
    preapproved_clause: Mapped[str | None] = mapped_column(Text, default=None)
    non_eea_staff_allowed: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(16), default=AgreementStatus.ACTIVE)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)

    customer: Mapped[Organisation] = relationship(foreign_keys=[customer_org_id], lazy="joined")
    vendor: Mapped[Organisation] = relationship(foreign_keys=[vendor_org_id], lazy="joined")

    @property
    def coverage(self) -> AgreementCovers:
        return AgreementCovers(self.covers)

    def is_valid_at(self, now: datetime) -> bool:
        # Times are checked directly, not only the status: between the moment an
        # agreement runs out and the next sweep its status still says active.
        return (
            self.status == AgreementStatus.ACTIVE
            and self.valid_from <= now
            and (self.valid_until is None or now < self.valid_until)
        )
