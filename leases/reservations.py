"""Capacity bookkeeping: pools, the reservations leases hold on them, and usage snapshots.

Imported by workflows (placement, reclamation), bot (approval cards, capacity views) and
gpulease. Functions take an open session and never commit.

The invariant kept here: the units reserved (and not released) on a pool never exceed its
capacity, also when many workers reserve at once. Every change to a pool's reservations first
locks its Pool row (`SELECT ... FOR UPDATE` on PostgreSQL; on SQLite the store begins every
transaction with BEGIN IMMEDIATE, which serialises writers), and only then sums what is held.
Lock order is lease row (leases.lifecycle), then pool row: a caller that changes both locks
the lease first (`records.get_lease(lock=True)`), so two workers never wait on each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from leases.errors import CapacityExceeded, DomainError
from leases.models import Lease, Pool, Reservation
from leases.records import record_event
from leases.states import LIVE_STATES


@dataclass(frozen=True)
class PoolUsage:
    """Reserved and free units of one tier on one cluster; `draining`, the part of `capacity`
    on draining nodes (only leases that end before those empty may use it)."""

    cluster: str
    tier: str
    capacity: int
    reserved: int
    draining: int = 0

    @property
    def free(self) -> int:
        """Units a new lease can reserve, its draining nodes left out (never negative)."""
        return max(self.capacity - self.draining - self.reserved, 0)


def _lock_pool(session: Session, *, cluster: str, tier: str) -> Pool | None:
    statement = (
        select(Pool)
        .where(Pool.cluster == cluster, Pool.tier == tier)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return session.exec(statement).first()


def _reserved_units(session: Session, *, cluster: str, tier: str) -> int:
    statement = select(func.coalesce(func.sum(Reservation.units), 0)).where(
        Reservation.cluster == cluster,
        Reservation.tier == tier,
        col(Reservation.released_at).is_(None),
    )
    return int(session.exec(statement).one())


def _create_pool(
    session: Session, *, cluster: str, tier: str, units: int, draining: int, now: datetime
) -> tuple[Pool, bool]:
    """Insert the pool and return it with True, or, when a concurrent transaction inserted it
    first (two placers on a new cluster), return that one's row, locked, with False."""
    try:
        with session.begin_nested():
            pool = Pool(cluster=cluster, tier=tier, capacity_units=units, draining_units=draining, updated_at=now)
            session.add(pool)
            session.flush()
        return pool, True
    except IntegrityError:
        existing = _lock_pool(session, cluster=cluster, tier=tier)
        if existing is None:
            raise
        return existing, False


def set_pool_capacity(
    session: Session,
    *,
    cluster: str,
    tier: str,
    units: int,
    now: datetime,
    actor: str = "system",
    force: bool = False,
    draining: int = 0,
) -> Pool:
    """Set a pool's capacity (`draining`: how much of it is on draining nodes), creating it if
    new; refuse to go below what is reserved.

    Only a change is written and audited: placement sets every pool of the cluster from the
    nodes it has just read, for each lease it decides, and most of those find nothing new.
    """
    # `force` records capacity that is gone whatever is held (a node died): reservations then
    # exceed capacity until leases end, and `free` stays 0 meanwhile.
    if units < 0:
        raise DomainError(f"capacity cannot be negative ({units})", field="units")
    pool = _lock_pool(session, cluster=cluster, tier=tier)
    created = False
    if pool is None:
        pool, created = _create_pool(session, cluster=cluster, tier=tier, units=units, draining=draining, now=now)
    before = None if created else pool.capacity_units
    if before == units:
        pool.draining_units = draining  # not audited: it follows drains, which are
        return pool
    if before is not None:
        reserved = _reserved_units(session, cluster=cluster, tier=tier)
        if units < reserved and not force:
            raise CapacityExceeded(
                f"{tier} on {cluster} has {reserved} units reserved; cannot shrink it to "
                f"{units} while they are held",
                field="units",
            )
        pool.capacity_units = units
        pool.draining_units = draining
        pool.updated_at = now
    record_event(
        session,
        actor=actor,
        action="pool.capacity_set",
        now=now,
        data={"cluster": cluster, "tier": tier, "from": before, "to": units, "force": force},
    )
    return pool


def held_reservation(session: Session, *, lease_id: str) -> Reservation | None:
    """Return the reservation a lease holds now, if any."""
    statement = select(Reservation).where(
        Reservation.lease_id == lease_id, col(Reservation.released_at).is_(None)
    )
    return session.exec(statement).first()


def reserve(session: Session, *, lease: Lease, now: datetime) -> Reservation:
    """Reserve a lease's units in its pool, or raise CapacityExceeded; repeats are no-ops."""
    if lease.state not in LIVE_STATES:
        raise DomainError(f"lease {lease.id} is {lease.state}; it cannot hold capacity")
    # Lock the pool before anything else, so the check below and the insert cannot
    # interleave with another reservation on the same pool (nor with a second reserve of
    # this lease).
    pool = _lock_pool(session, cluster=lease.cluster, tier=lease.tier)
    held = held_reservation(session, lease_id=lease.id)
    if held is not None:
        return held
    if pool is None:
        raise CapacityExceeded(
            f"there is no {lease.tier} capacity on {lease.cluster}", field="tier"
        )
    reserved = _reserved_units(session, cluster=lease.cluster, tier=lease.tier)
    free = pool.capacity_units - reserved
    if lease.units > free:
        raise CapacityExceeded(
            f"{lease.tier} on {lease.cluster} has {max(free, 0)} of {pool.capacity_units} units "
            f"free; {lease.units} asked",
            field="units",
        )
    reservation = Reservation(
        lease_id=lease.id,
        cluster=lease.cluster,
        tier=lease.tier,
        units=lease.units,
        reserved_at=now,
    )
    session.add(reservation)
    session.flush()
    return reservation


def release(session: Session, *, lease: Lease, now: datetime) -> Reservation | None:
    """Return the lease's reserved units to the pool; a no-op (None) if it holds none."""
    held = held_reservation(session, lease_id=lease.id)
    if held is None:
        return None
    # Same lock order as reserve (pool first), so a release and a reserve never deadlock.
    _lock_pool(session, cluster=held.cluster, tier=held.tier)
    session.refresh(held)
    if held.released_at is None:
        held.released_at = now
        session.flush()
    return held


def pool_usage(session: Session, *, cluster: str | None = None) -> list[PoolUsage]:
    """Return capacity, reserved and free units of every pool (of one cluster if given)."""
    held = (
        select(
            Reservation.cluster,
            Reservation.tier,
            func.sum(Reservation.units).label("units"),
        )
        .where(col(Reservation.released_at).is_(None))
        .group_by(col(Reservation.cluster), col(Reservation.tier))
        .subquery()
    )
    statement = (
        select(Pool.cluster, Pool.tier, Pool.capacity_units, func.coalesce(held.c.units, 0), Pool.draining_units)
        .outerjoin(held, (held.c.cluster == Pool.cluster) & (held.c.tier == Pool.tier))
        .order_by(col(Pool.cluster), col(Pool.tier))
    )
    if cluster is not None:
        statement = statement.where(Pool.cluster == cluster)
    return [
        PoolUsage(cluster=c, tier=t, capacity=cap, reserved=int(units), draining=draining)
        for c, t, cap, units, draining in session.exec(statement).all()
    ]


def team_usage(session: Session, *, team: str) -> dict[str, int]:
    """Return the units of each tier that a team's live leases (requests included) hold."""
    statement = (
        select(Lease.tier, func.sum(Lease.units))
        .where(Lease.team == team, col(Lease.state).in_(LIVE_STATES))
        .group_by(col(Lease.tier))
    )
    return {tier: int(units) for tier, units in session.exec(statement).all()}


def live_leases_of(session: Session, *, requester: str) -> list[Lease]:
    """Return a requester's live leases, oldest first."""
    statement = (
        select(Lease)
        .where(Lease.requester == requester, col(Lease.state).in_(LIVE_STATES))
        .order_by(col(Lease.created_at), col(Lease.id))
    )
    return list(session.exec(statement).all())


def live_namespaces(session: Session, *, cluster: str | None = None) -> frozenset[str]:
    """Return the namespace names live leases hold (on one cluster if given)."""
    statement = select(Lease.namespace).where(col(Lease.state).in_(LIVE_STATES))
    if cluster is not None:
        statement = statement.where(Lease.cluster == cluster)
    return frozenset(session.exec(statement).all())
