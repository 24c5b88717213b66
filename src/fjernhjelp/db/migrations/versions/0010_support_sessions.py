"""remote_sessions: Support sessions, started with a one-time code

Revision ID: 0010
Revises: 0009

A Support session is a remote session of another kind, so it is a row of the same
table (``kind`` = "support"), not a table of its own that would link to a remote
session once the tunnel exists. Why one table:

- History. The customer's session history lists Access and Support sessions together,
  marked by kind: one query over one table (by customer, by technician, newest first),
  with one status, one end reason and the byte counts in the same columns. A separate
  table would need a union (or a second list) on every history page and API.
- Revocation. The tunnel matches live sessions against revocation events with
  ``LiveSession`` built from a row (remote.sessions.as_live); ``support`` is then just
  ``kind == "support"``, and the vendor, customer and technician columns are the ones
  Access already matches on. Two tables would need two matchers kept in step.
- One life cycle. The row exists from the moment the code is made (status "waiting"),
  becomes "joined" when the end user enters the code, and then goes through the same
  "requested", "active", "ended" as Access once the tunnel is opened; a cancelled or
  expired code ends it with that reason. Nothing has to be copied from one table to
  another at the moment the tunnel opens.

What changes: ``machine_id`` and ``group_id`` are nullable (Support reaches a person,
not an enrolled machine in a group); the relay token hashes and the node are nullable
(a Support session gets them when its tunnel is asked for, not when the code is made);
``agreement_id`` names the agreement that allowed a Support session (Access keeps
naming its grant). The code itself is never stored: only ``code_digest``, an
HMAC-SHA256 under a key derived from the server's at-rest key (remote/support.py), so a
database dump cannot be searched offline for the 10^9 possible codes. ``code_used_at``
is set once, by the one UPDATE that spends the code; ``joined_from`` is the address it
was entered from; ``end_user_token_hash`` (SHA-256) is what the end user's one-time
client will present.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import fjernhjelp.db.base

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_NOW_NULLABLE = (
    ("machine_id", sa.Uuid()),
    ("group_id", sa.Uuid()),
    ("technician_token_hash", sa.LargeBinary(length=32)),
    ("agent_token_hash", sa.LargeBinary(length=32)),
    ("node_id", sa.String(length=64)),
)


def upgrade() -> None:
    with op.batch_alter_table("remote_sessions", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("kind", sa.String(length=10), nullable=False, server_default="access")
        )
        batch_op.add_column(sa.Column("agreement_id", sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column("code_digest", sa.LargeBinary(length=32), nullable=True))
        batch_op.add_column(
            sa.Column(
                "code_expires_at", fjernhjelp.db.base.UTCDateTime(timezone=True), nullable=True
            )
        )
        batch_op.add_column(
            sa.Column("code_used_at", fjernhjelp.db.base.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("joined_from", sa.String(length=64), nullable=True))
        batch_op.add_column(
            sa.Column("end_user_token_hash", sa.LargeBinary(length=32), nullable=True)
        )
        for name, type_ in _NOW_NULLABLE:
            batch_op.alter_column(name, existing_type=type_, nullable=True)
        batch_op.create_index(batch_op.f("ix_remote_sessions_code_digest"), ["code_digest"])
        batch_op.create_index(batch_op.f("ix_remote_sessions_kind"), ["kind", "status"])


def downgrade() -> None:
    # Support rows cannot exist without those columns: they go with them.
    op.execute("DELETE FROM remote_sessions WHERE kind = 'support'")
    with op.batch_alter_table("remote_sessions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_remote_sessions_kind"))
        batch_op.drop_index(batch_op.f("ix_remote_sessions_code_digest"))
        for name, type_ in _NOW_NULLABLE:
            batch_op.alter_column(name, existing_type=type_, nullable=False)
        for name in (
            "end_user_token_hash",
            "joined_from",
            "code_used_at",
            "code_expires_at",
            "code_digest",
            "agreement_id",
            "kind",
        ):
            batch_op.drop_column(name)
