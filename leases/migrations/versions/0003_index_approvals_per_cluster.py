"""Index leases by cluster and approval time, for the demand estimate of the placer.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this change."""
    op.create_index("ix_lease_cluster_decided_at", "lease", ["cluster", "decided_at"])


def downgrade() -> None:
    """Revert this change."""
    op.drop_index("ix_lease_cluster_decided_at", table_name="lease")
