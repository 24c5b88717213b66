"""installer packages: the grant a vendor's technician made the package under

Revision ID: 0006
Revises: 0005

A package made by a vendor's technician works only while the grant it was made under
lives and still lets the vendor make packages. Packages made before this revision have
no grant recorded; enrolment refuses those whose maker is not of the customer's own
organisation, so no data needs moving here.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("installer_packages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("grant_id", sa.Uuid(), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_installer_packages_grant_id"), ["grant_id"], unique=False
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_installer_packages_grant_id_grants"),
            "grants",
            ["grant_id"],
            ["id"],
            ondelete="RESTRICT",
        )


def downgrade() -> None:
    with op.batch_alter_table("installer_packages", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_installer_packages_grant_id_grants"), type_="foreignkey"
        )
        batch_op.drop_index(batch_op.f("ix_installer_packages_grant_id"))
        batch_op.drop_column("grant_id")
