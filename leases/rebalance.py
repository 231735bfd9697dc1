"""Demand-aware elastic pools: what a node is worth to each tier, learned online from arrivals.

Placement alone moves a node to whichever tier is short right now, as long as the donor keeps
its reservations and queue. Under load that drifts nodes towards the tiers whose leases need
the most GPUs, and away from the ones that turn a GPU into the most accepted requests. This
module prices a node in each pool:

- `DemandTracker` keeps exponentially decayed arrival statistics per tier (rate, lease sizes,
  durations), from arrivals only: nothing about the future.
- `Demand.value(tier, units)` is the expected number of requests per hour a pool of `units`
  units of that tier accepts, from the Kaufman-Roberts recursion (a loss system with one
  class per lease size: a lease of u units needs u free units). A node is worth the increase
  in value it brings to a pool, so a move's gain and loss compare tiers whose units differ in
  size and whose leases differ in GPUs per request.
- `Prices` (leases.moves) pairs a demand with the margins by which a move, or a drain, must
  gain more than it loses; placement refuses the others.
- `rebalance` moves idle nodes to where they are worth more before anyone asks.

The caller feeds a tracker with requests as they arrive (workflows.demand replays the recent
approvals from the store; the benchmark feeds one request at a time), takes an estimate now
and then (`estimate`; the value tables are built once per estimate, not per decision) and
passes `Prices(estimate)` to `place`, `stale_drains` and `rebalance`. Pure functions and plain data; imports only leases.capacity and leases.moves.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from leases.capacity import NodeState, Reservations, TierSpec
from leases.moves import NodeMove, Prices, candidate_kind, donor_loss, movable, move_gain, move_of, summarise

__all__ = [
    "Demand",
    "DemandTracker",
    "TierDemand",
    "accepted_rates",
    "pool_limits",
    "rebalance",
]

_HOUR = 3600.0
# Kaufman-Roberts weights are kept as floats; rescale before they overflow.
_HUGE = 1e250


@dataclass(frozen=True)
class TierDemand:
    """Arrivals of one tier: requests per second, lease sizes (units, share) and mean duration."""

    rate_per_s: float
    sizes: tuple[tuple[int, float], ...]
    mean_duration_s: float

    @property
    def offered_units(self) -> float:
        """Return the mean units the tier's leases would hold with unlimited room (Little's law)."""
        return self.rate_per_s * self.mean_duration_s * sum(u * p for u, p in self.sizes)


def accepted_rates(demand: TierDemand, limit: int) -> list[float]:
    """Return the requests per hour a pool accepts with 0, 1, 2, ... units.

    The Kaufman-Roberts recursion for a loss system: leases of u units arrive at rate λ·p_u and
    hold u units for the mean duration; the occupancy distribution is the one of unlimited room
    truncated at the capacity, and a lease of u units is accepted when the occupancy is at most
    capacity - u. The list stops at `limit` units, or earlier where blocking has become
    negligible (12 standard deviations above the mean occupancy): beyond its end the value is
    its last entry.
    """
    rate_h = demand.rate_per_s * _HOUR
    sizes = [(u, p) for u, p in demand.sizes if u > 0 and p > 0]
    if rate_h <= 0 or not sizes or demand.mean_duration_s <= 0:
        return [0.0]
    offered = [(u, demand.rate_per_s * p * demand.mean_duration_s * u) for u, p in sizes]
    mean = sum(a for _, a in offered)
    sd = math.sqrt(sum(a * u for u, a in offered))
    span = max(u for u, _ in sizes)
    top = max(1, min(limit, math.ceil(mean + 12.0 * sd) + span))
    # Occupancy weights q and their running sums, kept only as far back as the largest lease
    # (the value at capacity C needs the sums at C - u), rescaled together so ratios survive.
    q = [0.0] * span + [1.0]
    cumulative = [0.0] * span + [1.0]
    values = [0.0]
    for j in range(1, top + 1):
        total = 0.0
        for u, a in offered:
            if u <= j:
                total += a * q[-u]
        q.append(total / j)
        cumulative.append(cumulative[-1] + q[-1])
        del q[0], cumulative[0]
        if cumulative[-1] > _HUGE:
            q = [x / _HUGE for x in q]
            cumulative = [x / _HUGE for x in cumulative]
        room = cumulative[-1]
        accepted = 0.0
        for u, p in sizes:
            if u <= j:
                accepted += rate_h * p * (cumulative[-1 - u] / room)
        values.append(accepted)
    return values


@dataclass
class Demand:
    """Estimated demand of every tier, and what a pool of a given size is worth to it.

    A tier without an estimate is worth nothing (value 0). `limits` caps each tier's table (the
    most units it could ever have); tables are built on first use, or all at once by `prepare`,
    and kept: a Demand is rebuilt now and then, and read by many decisions in between.
    """

    tiers: Mapping[str, TierDemand]
    limits: Mapping[str, int] = field(default_factory=dict)
    _tables: dict[str, list[float]] = field(default_factory=dict, repr=False)

    def value(self, tier: str, units: int) -> float:
        """Return the requests per hour a pool of `units` units of `tier` would accept."""
        if units <= 0:
            return 0.0
        table = self._tables.get(tier)
        if table is None:
            table = self._build(tier)
        return table[units] if units < len(table) else table[-1]

    def offered(self, tier: str) -> float:
        """Return the mean units the tier's leases would hold with unlimited room (0: no demand)."""
        demand = self.tiers.get(tier)
        return demand.offered_units if demand is not None else 0.0

    def prepare(self) -> Demand:
        """Build every value table now, so later decisions only read them; return self."""
        for tier in self.tiers:
            if tier not in self._tables:
                self._build(tier)
        return self

    def _build(self, tier: str) -> list[float]:
        demand = self.tiers.get(tier)
        limit = self.limits.get(tier, 1 << 16)
        table = accepted_rates(demand, limit) if demand is not None else [0.0]
        self._tables[tier] = table
        return table


class DemandTracker:
    """Exponentially decayed arrival statistics per tier, updated one arrival at a time.

    `half_life_s` sets how fast old arrivals are forgotten: long enough to average over a few
    leases of a small tier, short enough to follow a change of mix within a few lease
    lifetimes. `observe` must be called in time order (later calls with earlier times count as
    simultaneous); `estimate` says nothing (None) until `learn_s` seconds of arrivals and at
    least `min_requests` requests are seen, so that a few requests do not move nodes around.
    """

    def __init__(self, *, half_life_s: float, learn_s: float = 0.0, min_requests: int = 0) -> None:
        self.decay = math.log(2.0) / half_life_s
        self.learn_s = learn_s
        self.min_requests = min_requests
        self.seen = 0
        self.first: float | None = None
        self.last: float | None = None
        # Per tier: decayed count, decayed count per lease size, decayed sum of durations.
        self.count: dict[str, float] = {}
        self.sizes: dict[str, dict[int, float]] = {}
        self.durations: dict[str, float] = {}

    def observe(self, *, tier: str, units: int, duration_s: float, at: float) -> None:
        """Record one request for `units` of `tier`, for `duration_s`, arriving at `at`."""
        self._age(at)
        self.seen += 1
        self.count[tier] = self.count.get(tier, 0.0) + 1.0
        sizes = self.sizes.setdefault(tier, {})
        sizes[units] = sizes.get(units, 0.0) + 1.0
        self.durations[tier] = self.durations.get(tier, 0.0) + duration_s

    def estimate(
        self,
        *,
        now: float,
        tiers: Mapping[str, TierSpec] | None = None,
        limits: Mapping[str, int] | None = None,
    ) -> Demand | None:
        """Return the demand seen up to `now` (tiers of `tiers` only, when given), or None
        while fewer than `learn_s` seconds of arrivals, or `min_requests` requests, are seen."""
        if self.first is None or now - self.first < self.learn_s or self.seen < self.min_requests:
            return None
        self._age(now)
        # Decayed length of the observed window: the integral of e^(-k(now - t)) over [first, now].
        span = max(now - self.first, 1.0)
        window = (1.0 - math.exp(-self.decay * span)) / self.decay
        estimated = {}
        for tier, count in self.count.items():
            if count <= 0 or (tiers is not None and tier not in tiers):
                continue
            sizes = self.sizes[tier]
            total = sum(sizes.values())
            estimated[tier] = TierDemand(
                rate_per_s=count / window,
                sizes=tuple(sorted((u, w / total) for u, w in sizes.items())),
                mean_duration_s=self.durations[tier] / count,
            )
        return Demand(tiers=estimated, limits=dict(limits or {}))

    def _age(self, at: float) -> None:
        if self.first is None or self.last is None:
            self.first = self.last = at
            return
        if at <= self.last:
            return
        factor = math.exp(-self.decay * (at - self.last))
        self.last = at
        for tier in self.count:
            self.count[tier] *= factor
            self.durations[tier] *= factor
            sizes = self.sizes[tier]
            for u in sizes:
                sizes[u] *= factor


def pool_limits(inventory: Iterable[NodeState], tiers: Mapping[str, TierSpec]) -> dict[str, int]:
    """Return the most units each tier could have: every node of its GPU model serving it."""
    gpus: dict[str, int] = {}
    for node in inventory:
        if node.gpu_model is not None:
            gpus[node.gpu_model] = gpus.get(node.gpu_model, 0) + node.gpus
    return {name: gpus.get(spec.gpu_model, 0) * spec.units_per_gpu for name, spec in tiers.items()}


def rebalance(
    *,
    inventory: Sequence[NodeState],
    reservations: Reservations,
    tiers: Mapping[str, TierSpec],
    waiting: Mapping[str, int] | None,
    prices: Prices,
    in_flight: int,
    max_in_flight: int,
) -> list[NodeMove]:
    """Move idle nodes to the tiers where they are worth more, before anyone asks for them.

    A node moves only when its new tier gains more than (1 + `prices.move_margin`) times what
    its pool loses, and the donor keeps its reservations. The largest net gain goes first, up
    to the free move slots; pools are priced again after each pick. Nodes with GPU pods never
    move (drains start from `place`, for a request that waits).
    """
    slots = max_in_flight - in_flight
    if slots <= 0:
        return []
    pools = summarise(
        inventory=inventory, reservations=reservations, tiers=tiers, waiting=waiting, prices=prices
    )
    chosen: list[NodeMove] = []
    while len(chosen) < slots:
        best: tuple[float, NodeMove] | None = None
        for spec in tiers.values():
            nets: dict[tuple, float] = {}  # idle nodes alike gain and lose alike (leases.moves)
            for _, candidate in movable(pools=pools, target=spec, margin=prices.move_margin):
                kind = candidate_kind(candidate)
                if kind not in nets:
                    nets[kind] = move_gain(pools, candidate, spec) - donor_loss(pools, candidate)
                net = nets[kind]
                if best is None or net > best[0]:
                    best = (net, move_of(candidate, spec))
        if best is None:
            break
        chosen.append(best[1])
        pools.commit(best[1])
    return chosen
