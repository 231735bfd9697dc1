"""Add the notification outbox and the node-move record.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _timestamp(name: str, *, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    """Apply this change."""
    op.create_table(
        "outbox_message",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=160), nullable=False),
        sa.Column("lease_id", sa.String(length=32), nullable=True),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        _timestamp("created_at"),
        _timestamp("sent_at", nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["lease_id"], ["lease.id"], name="fk_outbox_message_lease_id_lease"),
        sa.PrimaryKeyConstraint("id", name="pk_outbox_message"),
        sa.UniqueConstraint("key", name="uq_outbox_message_key"),
    )
    op.create_index("ix_outbox_message_lease_id", "outbox_message", ["lease_id"])
    op.create_index("ix_outbox_message_sent_at", "outbox_message", ["sent_at"])
    op.create_table(
        "node_move",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("cluster", sa.String(length=63), nullable=False),
        sa.Column("node", sa.String(length=253), nullable=False),
        sa.Column("from_tier", sa.String(length=63), nullable=True),
        sa.Column("to_tier", sa.String(length=63), nullable=False),
        sa.Column("node_config", sa.String(length=128), nullable=True),
        sa.Column("plugin_config", sa.String(length=128), nullable=True),
        sa.Column("step", sa.String(length=32), nullable=False),
        sa.Column("previous", sa.JSON(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("lease_id", sa.String(length=32), nullable=True),
        _timestamp("started_at"),
        _timestamp("updated_at"),
        _timestamp("finished_at", nullable=True),
        sa.ForeignKeyConstraint(["lease_id"], ["lease.id"], name="fk_node_move_lease_id_lease"),
        sa.PrimaryKeyConstraint("id", name="pk_node_move"),
    )
    op.create_index("ix_node_move_node", "node_move", ["node"])


def downgrade() -> None:
    """Revert this change."""
    op.drop_index("ix_node_move_node", table_name="node_move")
    op.drop_table("node_move")
    op.drop_index("ix_outbox_message_sent_at", table_name="outbox_message")
    op.drop_index("ix_outbox_message_lease_id", table_name="outbox_message")
    op.drop_table("outbox_message")
