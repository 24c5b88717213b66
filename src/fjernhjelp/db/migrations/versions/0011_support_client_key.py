"""remote_sessions: the Support client's key and when its tunnel was asked for

Revision ID: 0011
Revises: 0010

The end user's one-time client makes an Ed25519 identity in memory when it starts and
logs in on the control link with its end-user token and that key. The first login
records the key (``client_public_key``): from then on the token opens the link only
for the holder of that key (a reconnect after a network drop), never for another one;
and the technician's tunnel checks the client's handshake signature against it.

``tunnel_requested_at`` is when the technician asked for the tunnel's ticket: the relay
tokens expire from then (``requested_at`` stays the time the code was made, which the
history shows).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import fjernhjelp.db.base

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("remote_sessions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("client_public_key", sa.LargeBinary(32), nullable=True))
        batch_op.add_column(
            sa.Column(
                "tunnel_requested_at",
                fjernhjelp.db.base.UTCDateTime(timezone=True),
                nullable=True,
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("remote_sessions", schema=None) as batch_op:
        batch_op.drop_column("tunnel_requested_at")
        batch_op.drop_column("client_public_key")
