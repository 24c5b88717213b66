"""Signed checkpoints of the audit chain head, as kept by the server (audit/checkpoint.py)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from fjernhjelp.db.base import Base, UTCDateTime


class AuditCheckpoint(Base):
    """One signed head. The database holding them proves nothing by itself (its owner
    could delete rows); the copies outside it (syslog, downloads) are what count."""

    __tablename__ = "audit_checkpoints"

    # One checkpoint per head: the sequence number is the key.
    seq: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False
    )
    head_hash: Mapped[str] = mapped_column(String(64))
    signed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    key_fingerprint: Mapped[str] = mapped_column(String(64))
    signature: Mapped[str] = mapped_column(String(100))  # base64url, 64 bytes
