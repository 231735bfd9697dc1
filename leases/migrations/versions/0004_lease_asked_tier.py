"""Keep the tier a requester asked for when their lease moves to an accepted fallback.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this change."""
    with op.batch_alter_table("lease") as batch:
        batch.add_column(sa.Column("asked_tier", sa.String(length=63), nullable=True))


def downgrade() -> None:
    """Revert this change."""
    with op.batch_alter_table("lease") as batch:
        batch.drop_column("asked_tier")
