"""Create the state store tables.

Revision ID: 0001
Revises:
Create Date: 2026-11-23

Written out in plain SQLAlchemy types (not the models' types) so this revision stays as it is
when the models change: UTCDateTime is a timestamp with time zone, the state and decision
enums are VARCHAR(32), sqlmodel's AutoString is VARCHAR.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The live states when this revision was written; a later state needs a new revision that
# recreates uq_lease_live_namespace.
LIVE_STATES_SQL = (
    "state IN ('active', 'approved', 'expiring', 'pending_approval', 'placing', "
    "'provisioning', 'reclaiming', 'requested', 'waitlisted')"
)


def _timestamp(name: str, *, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    """Apply this change."""
    op.create_table(
        "pool",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("cluster", sa.String(length=63), nullable=False),
        sa.Column("tier", sa.String(length=63), nullable=False),
        sa.Column("capacity_units", sa.Integer(), nullable=False),
        _timestamp("updated_at"),
        sa.PrimaryKeyConstraint("id", name="pk_pool"),
        sa.UniqueConstraint("cluster", "tier", name="uq_pool_cluster_tier"),
    )
    op.create_table(
        "team",
        sa.Column("name", sa.String(length=63), nullable=False),
        _timestamp("created_at"),
        sa.PrimaryKeyConstraint("name", name="pk_team"),
    )
    op.create_table(
        "lease",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("namespace", sa.String(length=63), nullable=False),
        sa.Column("cluster", sa.String(length=63), nullable=False),
        sa.Column("requester", sa.String(length=64), nullable=False),
        sa.Column("requester_email", sa.String(length=254), nullable=True),
        sa.Column("team", sa.String(length=63), nullable=False),
        sa.Column("tier", sa.String(length=63), nullable=False),
        sa.Column("units", sa.Integer(), nullable=False),
        sa.Column("duration_seconds", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=32), nullable=False),
        _timestamp("created_at"),
        _timestamp("updated_at"),
        _timestamp("decided_at", nullable=True),
        _timestamp("active_at", nullable=True),
        _timestamp("expires_at", nullable=True),
        _timestamp("reclaim_at", nullable=True),
        sa.Column("extensions", sa.Integer(), nullable=False),
        sa.Column("extended_seconds", sa.Integer(), nullable=False),
        sa.Column("idempotency_key", sa.String(length=128), nullable=True),
        sa.Column("thread_channel", sa.String(length=64), nullable=True),
        sa.Column("thread_ts", sa.String(length=32), nullable=True),
        sa.Column("approval_channel", sa.String(length=64), nullable=True),
        sa.Column("approval_ts", sa.String(length=32), nullable=True),
        sa.Column("step", sa.String(length=64), nullable=True),
        _timestamp("step_started_at", nullable=True),
        sa.Column("failure_reason", sa.Text(), nullable=True),
        sa.Column("fallback_tiers", sa.JSON(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["team"], ["team.name"], name="fk_lease_team_team"),
        sa.PrimaryKeyConstraint("id", name="pk_lease"),
        sa.UniqueConstraint("idempotency_key", name="uq_lease_idempotency_key"),
    )
    op.create_index("ix_lease_requester", "lease", ["requester"])
    op.create_index("ix_lease_state", "lease", ["state"])
    op.create_index("ix_lease_team", "lease", ["team"])
    op.create_index(
        "uq_lease_live_namespace",
        "lease",
        ["cluster", "namespace"],
        unique=True,
        sqlite_where=sa.text(LIVE_STATES_SQL),
        postgresql_where=sa.text(LIVE_STATES_SQL),
    )
    op.create_table(
        "approval_decision",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("lease_id", sa.String(length=32), nullable=False),
        sa.Column("approver", sa.String(length=64), nullable=False),
        sa.Column("decision", sa.String(length=32), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("rule", sa.String(length=128), nullable=True),
        _timestamp("decided_at"),
        sa.ForeignKeyConstraint(
            ["lease_id"], ["lease.id"], name="fk_approval_decision_lease_id_lease"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_approval_decision"),
        sa.UniqueConstraint("lease_id", name="uq_approval_decision_lease"),
    )
    op.create_table(
        "audit_event",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("lease_id", sa.String(length=32), nullable=True),
        sa.Column("actor", sa.String(length=64), nullable=False),
        _timestamp("at"),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("from_state", sa.String(length=32), nullable=True),
        sa.Column("to_state", sa.String(length=32), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("data", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(["lease_id"], ["lease.id"], name="fk_audit_event_lease_id_lease"),
        sa.PrimaryKeyConstraint("id", name="pk_audit_event"),
    )
    op.create_index("ix_audit_event_lease_id", "audit_event", ["lease_id"])
    op.create_table(
        "reservation",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("lease_id", sa.String(length=32), nullable=False),
        sa.Column("cluster", sa.String(length=63), nullable=False),
        sa.Column("tier", sa.String(length=63), nullable=False),
        sa.Column("units", sa.Integer(), nullable=False),
        _timestamp("reserved_at"),
        _timestamp("released_at", nullable=True),
        sa.ForeignKeyConstraint(
            ["cluster", "tier"],
            ["pool.cluster", "pool.tier"],
            name="fk_reservation_cluster_tier_pool",
        ),
        sa.ForeignKeyConstraint(["lease_id"], ["lease.id"], name="fk_reservation_lease_id_lease"),
        sa.PrimaryKeyConstraint("id", name="pk_reservation"),
    )
    op.create_index("ix_reservation_lease_id", "reservation", ["lease_id"])
    op.create_index(
        "uq_reservation_held",
        "reservation",
        ["lease_id"],
        unique=True,
        sqlite_where=sa.text("released_at IS NULL"),
        postgresql_where=sa.text("released_at IS NULL"),
    )
    op.create_table(
        "sent_warning",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("lease_id", sa.String(length=32), nullable=False),
        sa.Column("offset_seconds", sa.Integer(), nullable=False),
        _timestamp("sent_at"),
        sa.ForeignKeyConstraint(
            ["lease_id"], ["lease.id"], name="fk_sent_warning_lease_id_lease"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_sent_warning"),
        sa.UniqueConstraint("lease_id", "offset_seconds", name="uq_sent_warning_lease_offset"),
    )


def downgrade() -> None:
    """Revert this change."""
    op.drop_table("sent_warning")
    op.drop_index("uq_reservation_held", table_name="reservation")
    op.drop_index("ix_reservation_lease_id", table_name="reservation")
    op.drop_table("reservation")
    op.drop_index("ix_audit_event_lease_id", table_name="audit_event")
    op.drop_table("audit_event")
    op.drop_table("approval_decision")
    op.drop_index("uq_lease_live_namespace", table_name="lease")
    op.drop_index("ix_lease_team", table_name="lease")
    op.drop_index("ix_lease_state", table_name="lease")
    op.drop_index("ix_lease_requester", table_name="lease")
    op.drop_table("lease")
    op.drop_table("team")
    op.drop_table("pool")
