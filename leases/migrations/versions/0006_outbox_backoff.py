"""Retry each unsent notification after a growing pause, and record when one is given up.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this change."""
    with op.batch_alter_table("outbox_message") as batch:
        batch.add_column(sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("given_up_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    """Revert this change."""
    with op.batch_alter_table("outbox_message") as batch:
        batch.drop_column("given_up_at")
        batch.drop_column("next_attempt_at")
