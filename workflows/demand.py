"""Demand prices for a cluster's pools, learned from the requests in the store.

leases.rebalance prices a node in each pool from the recent arrivals of each tier. A worker
keeps no state between tasks, so the estimate is rebuilt from the store when it is needed:
every lease approved on the cluster within the last few half-lives is one arrival (its tier,
units and duration, at its approval time). Denied requests never reach placement and are not
demand. `None` (no prices, placement as without them) while pricing is off in the policy or
fewer than `placement.demand_warmup` of requests, or `placement.demand_min_requests`
requests, have been seen: a handful of requests says nothing about demand.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlmodel import Session, col, func, select

from config.policy import Placement
from leases.capacity import NodeState, TierSpec
from leases.models import Lease
from leases.moves import Prices
from leases.rebalance import Demand, DemandTracker, pool_limits
from leases.states import LeaseState
from workflows.runtime import Runtime

# Requests older than this many half-lives weigh under 1/256 of a new one: left out.
_HALF_LIVES = 8


def recent_arrivals(
    session: Session, *, cluster: str, since: datetime
) -> list[tuple[str, int, int, datetime]]:
    """Return (tier, units, duration in seconds, approved at) of leases approved since `since`;
    a lease on a fallback its requester accepted counts for the tier they asked for."""
    rows = session.exec(
        select(func.coalesce(Lease.asked_tier, Lease.tier), Lease.units, Lease.duration_seconds, Lease.decided_at)
        .where(
            Lease.cluster == cluster,
            col(Lease.decided_at).is_not(None),
            col(Lease.decided_at) >= since,
            Lease.state != LeaseState.DENIED,
        )
        .order_by(col(Lease.decided_at))
    ).all()
    return [(tier, units, seconds, at) for tier, units, seconds, at in rows if at is not None]


def estimate_demand(
    arrivals: Sequence[tuple[str, int, int, datetime]],
    *,
    now: datetime,
    inventory: Sequence[NodeState],
    tiers: Mapping[str, TierSpec],
    settings: Placement,
) -> Demand | None:
    """Estimate each tier's demand from the arrivals (oldest first), or None before the
    warm-up is over."""
    shift = settings.demand_shift_half_life
    tracker = DemandTracker(
        half_life_s=settings.demand_half_life.total_seconds(),
        shift_half_life_s=shift.total_seconds() if shift is not None else None,
        learn_s=settings.demand_warmup.total_seconds(),
        min_requests=settings.demand_min_requests,
    )
    for tier, units, seconds, at in arrivals:
        tracker.observe(tier=tier, units=units, duration_s=float(seconds), at=at.timestamp())
    return tracker.estimate(now=now.timestamp(), tiers=tiers, limits=pool_limits(inventory, tiers))


def estimate_prices(
    arrivals: Sequence[tuple[str, int, int, datetime]],
    *,
    now: datetime,
    inventory: Sequence[NodeState],
    tiers: Mapping[str, TierSpec],
    settings: Placement,
) -> Prices | None:
    """Price the pools from the arrivals (oldest first), or None before the warm-up is over."""
    demand = estimate_demand(arrivals, now=now, inventory=inventory, tiers=tiers, settings=settings)
    if demand is None:
        return None
    return Prices(
        demand.prepare(),
        move_margin=settings.move_margin,
        drain_margin=settings.drain_margin,
        fallback_share=settings.fallback_share,
    )


def window_of(settings: Placement) -> timedelta:
    """Return how far back requests count: the warm-up, or 8 half-lives if longer."""
    return max(settings.demand_warmup, settings.demand_half_life * _HALF_LIVES)


def cluster_prices(
    session: Session, rt: Runtime, *, cluster: str, inventory: Sequence[NodeState]
) -> Prices | None:
    """Return the prices of the cluster's pools now, or None (pricing off, or still learning)."""
    settings = rt.policy.placement
    if not settings.pricing:
        return None
    now = rt.now()
    arrivals = recent_arrivals(session, cluster=cluster, since=now - window_of(settings))
    return estimate_prices(arrivals, now=now, inventory=inventory, tiers=rt.tiers, settings=settings)


@dataclass
class PriceBook:
    """Prices of each cluster, estimated once and then reused: a waitlist wake-up decides every
    waiting lease (and rebalances) within moments, on the same recent requests, so one
    estimate per cluster serves them all instead of one per lease."""

    _prices: dict[str, Prices | None] = field(default_factory=dict)

    def prices(
        self, session: Session, rt: Runtime, *, cluster: str, inventory: Sequence[NodeState]
    ) -> Prices | None:
        """Return the cluster's prices, estimating them on first use (as `cluster_prices`)."""
        if cluster not in self._prices:
            self._prices[cluster] = cluster_prices(session, rt, cluster=cluster, inventory=inventory)
        return self._prices[cluster]
