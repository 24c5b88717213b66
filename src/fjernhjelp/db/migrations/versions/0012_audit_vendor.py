"""audit_events: the vendor organisation an event is also about

Revision ID: 0012
Revises: 0011

An organisation reads the events its own people did (``actor_org_id``) and the events about
it as a customer (``customer_org_id``). Support has events whose actor belongs to neither
side's accounts but that the vendor must read: the end user entering a code (right or
wrong), the code expiring, the client being downloaded. Their actor is "end-user" or
"system"; naming the vendor as the actor's organisation would say the end user works for
the vendor. ``vendor_org_id`` says it plainly: this event is also the vendor's to read.

The column joins the hashed fields only when it is set (audit/chain.py), so every event
written before this migration keeps its hash and the chain still verifies end to end.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("vendor_org_id", sa.Uuid(), nullable=True))
        batch_op.create_index("ix_audit_events_vendor_org_id", ["vendor_org_id", "seq"])


def downgrade() -> None:
    # Events that carry a vendor would no longer verify without it: refuse rather than
    # break the chain.
    bind = op.get_bind()
    if bind.execute(
        sa.text("SELECT 1 FROM audit_events WHERE vendor_org_id IS NOT NULL LIMIT 1")
    ).first():
        raise RuntimeError("audit events name a vendor; downgrading would break the hash chain")
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_events_vendor_org_id")
        batch_op.drop_column("vendor_org_id")
