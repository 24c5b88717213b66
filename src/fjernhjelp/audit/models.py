"""Audit events and the head of their hash chain."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, Index, Integer, String, Text, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from fjernhjelp.db.base import Base, UTCDateTime


class AuditEvent(Base):
    __tablename__ = "audit_events"

    seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    id: Mapped[uuid.UUID] = mapped_column(Uuid, unique=True)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    action: Mapped[str] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(200))
    actor_user_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    actor_name: Mapped[str | None] = mapped_column(String(200))
    actor_org_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    customer_org_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    # The vendor an event is also about when its actor is none of the vendor's people
    # (Support's end user, the system): migration 0012.
    vendor_org_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, default=None)
    machine_id: Mapped[str | None] = mapped_column(String(64))
    source_address: Mapped[str | None] = mapped_column(String(64))
    factor: Mapped[str | None] = mapped_column(String(16))
    # Canonical JSON text, stored as written so the hash can be recomputed exactly.
    details: Mapped[str] = mapped_column(Text)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))

    __table_args__ = (
        Index("ix_audit_events_occurred_at", "occurred_at"),
        Index("ix_audit_events_actor_org_id", "actor_org_id", "seq"),
        Index("ix_audit_events_customer_org_id", "customer_org_id", "seq"),
        Index("ix_audit_events_vendor_org_id", "vendor_org_id", "seq"),
        Index("ix_audit_events_action", "action"),
    )


class AuditHead(Base):
    """One row: the last sequence number and hash. Appends lock it, so the chain
    never forks under concurrent writers, and verification can tell a truncated tail."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(64))
