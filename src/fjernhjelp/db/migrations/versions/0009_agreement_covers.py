"""agreements: whether an agreement covers Support, Access or both

Revision ID: 0009
Revises: 0008

A customer records with each vendor which kinds of remote assistance the agreement
covers: one-time Support sessions, Access through installed agents, or both. Agreements
recorded before this revision were made for Access (grants on machine groups rest on
them), so they cover Access only; a customer that wants Support from the same vendor
records it (or a new agreement) explicitly.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("agreements", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("covers", sa.String(length=10), nullable=False, server_default="access")
        )


def downgrade() -> None:
    with op.batch_alter_table("agreements", schema=None) as batch_op:
        batch_op.drop_column("covers")
