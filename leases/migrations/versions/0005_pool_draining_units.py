"""Record the units of each pool's draining nodes, so free units for new leases leave them out.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this change."""
    with op.batch_alter_table("pool") as batch:
        batch.add_column(sa.Column("draining_units", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    """Revert this change."""
    with op.batch_alter_table("pool") as batch:
        batch.drop_column("draining_units")
