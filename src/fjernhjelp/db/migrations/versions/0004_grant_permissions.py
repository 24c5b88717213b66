"""grants: clipboard, terminal as administrator and installer packages as permissions

Revision ID: 0004
Revises: 0003

The clipboard and an administrator's shell used to ride on "control" and "terminal";
each is now a decision of its own in the grant. Existing grants keep what they could do
with the clipboard (it came with control); an administrator's shell and making installer
packages start refused, since nobody chose them.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("grants", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("may_clipboard", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.add_column(
            sa.Column(
                "may_terminal_admin", sa.Boolean(), nullable=False, server_default=sa.false()
            )
        )
        batch_op.add_column(
            sa.Column(
                "may_make_packages", sa.Boolean(), nullable=False, server_default=sa.false()
            )
        )
    op.execute("UPDATE grants SET may_clipboard = may_control")


def downgrade() -> None:
    with op.batch_alter_table("grants", schema=None) as batch_op:
        batch_op.drop_column("may_make_packages")
        batch_op.drop_column("may_terminal_admin")
        batch_op.drop_column("may_clipboard")
