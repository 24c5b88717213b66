"""Terms of use: versions the operator publishes, and who accepted which, for what."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, Text, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column, relationship

from fjernhjelp.db.base import Base, UTCDateTime, new_id, utcnow


class Audience(enum.StrEnum):
    """Receiving and giving help carry different duties, so each has its own terms."""

    RECEIVING = "receiving"
    GIVING = "giving"


class TermsVersion(Base):
    __tablename__ = "terms_versions"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    audience: Mapped[str] = mapped_column(String(16))
    version: Mapped[int] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(String(200))
    body_nb: Mapped[str] = mapped_column(Text)
    body_en: Mapped[str] = mapped_column(Text)
    published_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    published_by_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )

    __table_args__ = (UniqueConstraint("audience", "version"),)

    def body(self, language: str) -> str:
        return self.body_en if language == "en" and self.body_en else self.body_nb


class TermsAcceptance(Base):
    __tablename__ = "terms_acceptances"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    organisation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organisations.id", ondelete="CASCADE"), index=True
    )
    terms_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("terms_versions.id", ondelete="RESTRICT")
    )
    audience: Mapped[str] = mapped_column(String(16))
    accepted_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    accepted_by_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    # Kept as text as well: the name of who accepted must outlive their account.
    accepted_by_name: Mapped[str] = mapped_column(String(200))

    terms: Mapped[TermsVersion] = relationship(lazy="joined")

    __table_args__ = (UniqueConstraint("organisation_id", "terms_id"),)
