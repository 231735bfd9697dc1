"""Tables of the state store (sqlmodel): teams, leases, pools, reservations, decisions, audit
events and sent expiry warnings.

May be imported by anything through leases. Nothing here commits or opens sessions: that is
`leases.store`; state changes go through `leases.lifecycle`, capacity through
`leases.reservations`.

Time: every timestamp column is `UTCDateTime`. Python code only ever sees timezone-aware UTC
datetimes; a naive datetime is refused when written. PostgreSQL stores `timestamptz`; SQLite,
which has no time zone type, stores the naive UTC wall time, and reads add UTC back.

Ids: a lease id is a 32-character lowercase hex uuid4 (safe as a Kubernetes label value);
every other table uses an integer key.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    DateTime,
    Dialect,
    ForeignKeyConstraint,
    Index,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy import Enum as SAEnum
from sqlmodel import Field, SQLModel

from leases.states import LIVE_STATES, Decision, LeaseState

__all__ = [
    "ApprovalDecision",
    "AuditEvent",
    "Lease",
    "NodeMoveRecord",
    "OutboxMessage",
    "Pool",
    "Reservation",
    "SentWarning",
    "Team",
    "UTCDateTime",
    "new_lease_id",
]


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp written and read as an aware UTC datetime on every database."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Convert to UTC (naive on SQLite); refuse naive input."""
        if value is None:
            return None
        if value.tzinfo is None:
            # A naive value could be local time or UTC; guessing would shift leases by hours.
            raise ValueError(f"naive datetime {value!r}: pass an aware UTC datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Return an aware UTC datetime."""
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _str_enum(enum: type) -> SAEnum:
    # Stored as VARCHAR with the enum's values, not a native PostgreSQL ENUM: adding a state
    # then needs no type migration, and SQLite and PostgreSQL hold the same text.
    return SAEnum(
        enum,
        native_enum=False,
        create_constraint=False,
        length=32,
        values_callable=lambda members: [m.value for m in members],
    )


# Every constraint gets a predictable name, so later migrations (and SQLite batch mode, which
# rebuilds tables) can refer to it. Set before any table is declared; every table of the
# project lives in this module.
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def new_lease_id() -> str:
    """Return a fresh lease id."""
    return uuid.uuid4().hex


_LIVE_SQL = text("state IN ({})".format(", ".join(f"'{s.value}'" for s in sorted(LIVE_STATES))))


class Team(SQLModel, table=True):
    """A team from the policy file, kept so history survives its removal from the file."""

    __tablename__ = "team"

    name: str = Field(primary_key=True, max_length=63)
    created_at: datetime = Field(sa_type=UTCDateTime)


class Lease(SQLModel, table=True):
    """One request and, once approved, the lease it becomes."""

    __tablename__ = "lease"
    __table_args__ = (
        # At most one live lease per namespace name on a cluster, enforced by the database so
        # two concurrent requests cannot both win. Terminal leases keep their row for history.
        Index(
            "uq_lease_live_namespace",
            "cluster",
            "namespace",
            unique=True,
            sqlite_where=_LIVE_SQL,
            postgresql_where=_LIVE_SQL,
        ),
        # A duplicate submission (same Slack view, retried task) finds the lease it made.
        UniqueConstraint("idempotency_key", name="uq_lease_idempotency_key"),
        # Demand prices read the leases approved on a cluster in the last hours (workflows.demand).
        Index("ix_lease_cluster_decided_at", "cluster", "decided_at"),
    )

    id: str = Field(default_factory=new_lease_id, primary_key=True, max_length=32)
    namespace: str = Field(max_length=63)
    cluster: str = Field(max_length=63)
    requester: str = Field(max_length=64, index=True)
    requester_email: str | None = Field(default=None, max_length=254)
    team: str = Field(foreign_key="team.name", max_length=63, index=True)
    tier: str = Field(max_length=63)
    # The tier the requester asked for, once the lease was moved to a fallback they accepted
    # (None: `tier` is the one asked for). Demand is what was asked (workflows.demand).
    asked_tier: str | None = Field(default=None, max_length=63)
    units: int = Field(gt=0)
    duration_seconds: int = Field(gt=0)
    reason: str = Field(default="", sa_type=Text)
    priority: int = 0
    state: LeaseState = Field(default=LeaseState.REQUESTED, sa_type=_str_enum(LeaseState), index=True)
    created_at: datetime = Field(sa_type=UTCDateTime)
    updated_at: datetime = Field(sa_type=UTCDateTime)
    decided_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    active_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    expires_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    reclaim_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    extensions: int = 0
    extended_seconds: int = 0
    idempotency_key: str | None = Field(default=None, max_length=128)
    thread_channel: str | None = Field(default=None, max_length=64)
    thread_ts: str | None = Field(default=None, max_length=32)
    approval_channel: str | None = Field(default=None, max_length=64)
    approval_ts: str | None = Field(default=None, max_length=32)
    # The workflow step in progress and since when: a reconciler re-enqueues steps that have
    # been running for too long.
    step: str | None = Field(default=None, max_length=64)
    step_started_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    failure_reason: str | None = Field(default=None, sa_type=Text)
    # Tiers on offer to the requester now, in place of theirs (their tier was full, these had
    # room at the last placement); None: nothing on offer.
    fallback_tiers: list[str] | None = Field(default=None, sa_type=JSON)
    # Bumped on every change through leases.lifecycle, so a Slack card or task can tell
    # that what it showed or read is out of date.
    version: int = 1


class Pool(SQLModel, table=True):
    """The capacity of one tier on one cluster; locked while reserving from it."""

    __tablename__ = "pool"
    __table_args__ = (UniqueConstraint("cluster", "tier", name="uq_pool_cluster_tier"),)

    id: int | None = Field(default=None, primary_key=True)
    cluster: str = Field(max_length=63)
    tier: str = Field(max_length=63)
    capacity_units: int = Field(ge=0)
    # Units of the pool's draining nodes, counted in capacity_units: their leases keep running
    # there, and only a lease that ends before they empty may be placed on them.
    draining_units: int = Field(default=0, ge=0)
    updated_at: datetime = Field(sa_type=UTCDateTime)


class Reservation(SQLModel, table=True):
    """Units of a pool held by a lease; released_at is set when they return to the pool."""

    __tablename__ = "reservation"
    __table_args__ = (
        ForeignKeyConstraint(["cluster", "tier"], ["pool.cluster", "pool.tier"]),
        # A lease holds at most one unreleased reservation: reserving twice is a no-op.
        Index(
            "uq_reservation_held",
            "lease_id",
            unique=True,
            sqlite_where=text("released_at IS NULL"),
            postgresql_where=text("released_at IS NULL"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    lease_id: str = Field(foreign_key="lease.id", max_length=32, index=True)
    cluster: str = Field(max_length=63)
    tier: str = Field(max_length=63)
    units: int = Field(gt=0)
    reserved_at: datetime = Field(sa_type=UTCDateTime)
    released_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class ApprovalDecision(SQLModel, table=True):
    """Who approved or denied a request, why, and under which auto-approval rule."""

    __tablename__ = "approval_decision"
    # A request is decided once; a second decision is refused by the database too.
    __table_args__ = (UniqueConstraint("lease_id", name="uq_approval_decision_lease"),)

    id: int | None = Field(default=None, primary_key=True)
    lease_id: str = Field(foreign_key="lease.id", max_length=32)
    approver: str = Field(max_length=64)  # a Slack user id, or "policy" for auto-approval
    decision: Decision = Field(sa_type=_str_enum(Decision))
    reason: str | None = Field(default=None, sa_type=Text)
    rule: str | None = Field(default=None, max_length=128)
    decided_at: datetime = Field(sa_type=UTCDateTime)


class AuditEvent(SQLModel, table=True):
    """Something that happened: a lease transition, a decision, a capacity change."""

    __tablename__ = "audit_event"

    id: int | None = Field(default=None, primary_key=True)
    lease_id: str | None = Field(default=None, foreign_key="lease.id", max_length=32, index=True)
    actor: str = Field(max_length=64)
    at: datetime = Field(sa_type=UTCDateTime)
    action: str = Field(max_length=64)
    from_state: LeaseState | None = Field(default=None, sa_type=_str_enum(LeaseState))
    to_state: LeaseState | None = Field(default=None, sa_type=_str_enum(LeaseState))
    reason: str | None = Field(default=None, sa_type=Text)
    data: dict[str, Any] | None = Field(default=None, sa_type=JSON)


class SentWarning(SQLModel, table=True):
    """An expiry warning sent for a lease `offset_seconds` before it expires."""

    __tablename__ = "sent_warning"
    __table_args__ = (
        UniqueConstraint("lease_id", "offset_seconds", name="uq_sent_warning_lease_offset"),
    )

    id: int | None = Field(default=None, primary_key=True)
    lease_id: str = Field(foreign_key="lease.id", max_length=32)
    offset_seconds: int
    sent_at: datetime = Field(sa_type=UTCDateTime)


class OutboxMessage(SQLModel, table=True):
    """A notification a step decided to send, written in the step's own transaction.

    `key` makes it once-only (e.g. `<lease>:active`): a redelivered task that reaches the same
    step finds the row and adds nothing. A dispatcher sends unsent rows and stamps `sent_at`;
    a failed send waits until `next_attempt_at`, and one still failing a day after it was
    written is stamped `given_up_at` and no longer tried.
    """

    __tablename__ = "outbox_message"
    __table_args__ = (UniqueConstraint("key", name="uq_outbox_message_key"),)

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(max_length=160)
    lease_id: str | None = Field(default=None, foreign_key="lease.id", max_length=32, index=True)
    kind: str = Field(max_length=64)
    payload: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    created_at: datetime = Field(sa_type=UTCDateTime)
    sent_at: datetime | None = Field(default=None, sa_type=UTCDateTime, index=True)
    attempts: int = 0
    last_error: str | None = Field(default=None, sa_type=Text)
    next_attempt_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    given_up_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class NodeMoveRecord(SQLModel, table=True):
    """A node moving between tiers (GPU Operator reconfiguration), step by step.

    `previous` keeps the labels to restore on failure or timeout; `step` is the last step
    done (planned, cordoned, reconfiguring, relabelled, done, rolled_back, failed).
    """

    __tablename__ = "node_move"

    id: int | None = Field(default=None, primary_key=True)
    cluster: str = Field(max_length=63)
    node: str = Field(max_length=253, index=True)
    from_tier: str | None = Field(default=None, max_length=63)
    to_tier: str = Field(max_length=63)
    node_config: str | None = Field(default=None, max_length=128)
    plugin_config: str | None = Field(default=None, max_length=128)
    step: str = Field(default="planned", max_length=32)
    previous: dict[str, Any] | None = Field(default=None, sa_type=JSON)
    reason: str | None = Field(default=None, sa_type=Text)
    lease_id: str | None = Field(default=None, foreign_key="lease.id", max_length=32)
    started_at: datetime = Field(sa_type=UTCDateTime)
    updated_at: datetime = Field(sa_type=UTCDateTime)
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
