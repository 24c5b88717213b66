"""audit: signed checkpoints of the chain head

Revision ID: 0008
Revises: 0006

The server signs the audit chain's head (count, hash, time) with its signing key at
intervals and on demand; the table keeps what it signed (audit/checkpoint_store.py).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import fjernhjelp.db.base

revision: str = "0008"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "audit_checkpoints",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=False,
            nullable=False,
        ),
        sa.Column("head_hash", sa.String(length=64), nullable=False),
        sa.Column("signed_at", fjernhjelp.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("key_fingerprint", sa.String(length=64), nullable=False),
        sa.Column("signature", sa.String(length=100), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_audit_checkpoints")),
    )


def downgrade() -> None:
    op.drop_table("audit_checkpoints")
