"""remote_sessions: how the end user's end of a Support session joined

Revision ID: 0014
Revises: 0012

A Support session's end user joins either with the one-time client or by sharing the
screen from the start page in the browser (issue 12). The first control-link login
records which (``client_way``: "client" or "browser"), next to the key it records: the
technician's console opens the screen share's video stream instead of the desktop for
"browser", and the history and audit can say how the session was run.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("remote_sessions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("client_way", sa.String(16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("remote_sessions", schema=None) as batch_op:
        batch_op.drop_column("client_way")
