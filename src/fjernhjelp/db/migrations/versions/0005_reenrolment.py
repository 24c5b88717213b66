"""re-enrolment: notices for one person, and who asked for an enrolment link

Revision ID: 0005
Revises: 0004

Re-enrolling an active account replaces its factors and ends its sessions; the person
is told at the next login. That notice is for the person, not for the organisation's
admins, so a notification can now name one user. The link remembers who asked for it,
so the notice can say.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.add_column(sa.Column("user_id", sa.Uuid(), nullable=True))
        batch_op.create_index(batch_op.f("ix_notifications_user_id"), ["user_id"], unique=False)
        batch_op.create_foreign_key(
            batch_op.f("fk_notifications_user_id_users"),
            "users",
            ["user_id"],
            ["id"],
            ondelete="CASCADE",
        )
    with op.batch_alter_table("enrolment_links", schema=None) as batch_op:
        batch_op.add_column(sa.Column("issued_by", sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("enrolment_links", schema=None) as batch_op:
        batch_op.drop_column("issued_by")
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_notifications_user_id_users"), type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_notifications_user_id"))
        batch_op.drop_column("user_id")
