"""Demand-aware elastic pools: what a node is worth to each tier, learned online from arrivals.

Placement alone moves a node to whichever tier is short right now, as long as the donor keeps
its reservations and queue. Under load that drifts nodes towards the tiers whose leases need
the most GPUs, and away from the ones that turn a GPU into the most accepted requests. This
module prices a node in each pool:

- `DemandTracker` keeps exponentially decayed arrival statistics per tier (rate, lease sizes,
  durations), from arrivals only: nothing about the future.
- `Demand.value(tier, units)` is the expected number of requests per hour a pool of `units`
  units of that tier accepts: Erlang's loss formula for leases of the tier's mean size, as
  the waitlist turns big and small leases away alike (`accepted_rates`). A node is worth the
  increase in value it brings to a pool, so a move's gain and loss compare tiers whose units
  differ in size and whose leases differ in GPUs per request.
- `Prices` (leases.moves) pairs a demand with the margins by which a move, or a drain, must
  gain more than it loses; placement refuses the others.
- `rebalance` moves idle nodes to where they are worth more before anyone asks, and
  `rebalance_drains` drains busy ones there, so that they move once empty.

The caller feeds a tracker with requests as they arrive (workflows.demand replays the recent
approvals from the store; the benchmark feeds one request at a time), takes an estimate now
and then (`estimate`; the value tables are built once per estimate, not per decision) and
passes `Prices(estimate)` to `place`, `stale_drains`, `rebalance` and `rebalance_drains`.
Pure functions and plain data; imports only leases.capacity and leases.moves.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from leases.capacity import NodeState, Reservations, TierSpec
from leases.moves import (
    NodeDrain,
    NodeMove,
    Prices,
    busy_candidate,
    candidate_kind,
    donor_loss,
    drain_loss,
    movable,
    move_gain,
    move_of,
    not_empty_by,
    summarise,
)

__all__ = [
    "Demand",
    "DemandTracker",
    "TierDemand",
    "accepted_rates",
    "pool_limits",
    "rebalance",
    "rebalance_drains",
]

_HOUR = 3600.0


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

    The waitlist serves leases in order (priority, then arrival; a smaller one passes only what
    cannot start yet), so a big lease is turned away about as often as a small one, unlike in
    a pure loss system, where small leases slip into the gaps and big ones are blocked. A pool
    of C units is then valued as a loss system of leases of the mean size s: C/s servers,
    offered the tier's leases in erlangs (rate × mean duration), accepting the share
    1 - ErlangB of them (linear between whole numbers of servers), and never a lease bigger
    than the pool. Erlang's formula holds whatever the distribution of durations. The list
    stops at `limit` units, or earlier where blocking has become negligible (12 standard
    deviations above the mean number of leases): beyond its end the value is its last entry.
    """
    rate_h = demand.rate_per_s * _HOUR
    sizes = [(u, p) for u, p in demand.sizes if u > 0 and p > 0]
    if rate_h <= 0 or not sizes or demand.mean_duration_s <= 0:
        return [0.0]
    total = sum(p for _, p in sizes)
    mean_size = sum(u * p for u, p in sizes) / total
    erlangs = demand.rate_per_s * demand.mean_duration_s
    servers = erlangs + 12.0 * math.sqrt(erlangs) + 1.0
    top = max(1, min(limit, math.ceil(servers * mean_size) + max(u for u, _ in sizes)))
    blocking = [1.0]  # Erlang B with 0, 1, 2, ... servers
    for k in range(1, math.ceil(top / mean_size) + 2):
        blocking.append(erlangs * blocking[-1] / (k + erlangs * blocking[-1]))
    values = [0.0]
    for units in range(1, top + 1):
        fits = sum(p for u, p in sizes if u <= units) / total  # no lease bigger than the pool
        n = units / mean_size
        whole = int(n)
        b = blocking[whole] + (n - whole) * (blocking[whole + 1] - blocking[whole])
        values.append(rate_h * fits * (1.0 - b))
    return values


@dataclass
class Demand:
    """Estimated demand of every tier, and what a pool of a given size is worth to it.

    A tier without an estimate is worth nothing (value 0). `recent` names the tiers estimated
    from their recent requests alone (their mix changed: DemandTracker). `limits` caps each
    tier's table (the most units it could ever have); tables are built on first use, or all at
    once by `prepare`, and kept: a Demand is rebuilt now and then, and read by many decisions
    in between.
    """

    tiers: Mapping[str, TierDemand]
    limits: Mapping[str, int] = field(default_factory=dict)
    recent: frozenset[str] = frozenset()
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


class _Decayed:
    """Arrival statistics per tier, each arrival's weight halving every `half_life_s`."""

    def __init__(self, half_life_s: float) -> None:
        self.decay = math.log(2.0) / half_life_s
        # Per tier: decayed count, decayed count per lease size, decayed sum of durations.
        self.count: dict[str, float] = {}
        self.sizes: dict[str, dict[int, float]] = {}
        self.durations: dict[str, float] = {}

    def add(self, tier: str, units: int, duration_s: float) -> None:
        self.count[tier] = self.count.get(tier, 0.0) + 1.0
        sizes = self.sizes.setdefault(tier, {})
        sizes[units] = sizes.get(units, 0.0) + 1.0
        self.durations[tier] = self.durations.get(tier, 0.0) + duration_s

    def age(self, seconds: float) -> None:
        factor = math.exp(-self.decay * seconds)
        for tier in self.count:
            self.count[tier] *= factor
            self.durations[tier] *= factor
            sizes = self.sizes[tier]
            for u in sizes:
                sizes[u] *= factor

    def window(self, span_s: float) -> float:
        """Return the decayed length of `span_s` seconds of arrivals up to now."""
        return (1.0 - math.exp(-self.decay * max(span_s, 1.0))) / self.decay

    def demand(self, tier: str, window: float) -> TierDemand | None:
        count = self.count.get(tier, 0.0)
        if count <= 0:
            return None
        sizes = self.sizes[tier]
        total = sum(sizes.values())
        return TierDemand(
            rate_per_s=count / window,
            sizes=tuple(sorted((u, w / total) for u, w in sizes.items())),
            mean_duration_s=self.durations[tier] / count,
        )


class DemandTracker:
    """Exponentially decayed arrival statistics per tier, updated one arrival at a time.

    `half_life_s` sets how fast old arrivals are forgotten: long enough to average over many
    leases, so that chance bursts move no node. With `shift_half_life_s` (shorter), a second
    set of statistics follows recent arrivals, and a tier whose recent arrivals are more than
    `shift_z` standard deviations off what the long estimate expects (a change of mix, not
    chance) is estimated from the recent ones alone until the long estimate catches up.
    `observe` must be called in time order (later calls with earlier times count as
    simultaneous); `estimate` says nothing (None) until `learn_s` seconds of arrivals and at
    least `min_requests` requests are seen, so that a few requests do not move nodes around.
    """

    def __init__(
        self,
        *,
        half_life_s: float,
        learn_s: float = 0.0,
        min_requests: int = 0,
        shift_half_life_s: float | None = None,
        shift_z: float = 2.0,
    ) -> None:
        self.slow = _Decayed(half_life_s)
        self.fast = _Decayed(shift_half_life_s) if shift_half_life_s else None
        self.shift_z = shift_z
        self.learn_s = learn_s
        self.min_requests = min_requests
        self.seen = 0
        self.first: float | None = None
        self.last: float | None = None

    def observe(self, *, tier: str, units: int, duration_s: float, at: float) -> None:
        """Record one request for `units` of `tier`, for `duration_s`, arriving at `at`."""
        self._age(at)
        self.seen += 1
        for stats in self._stats():
            stats.add(tier, units, duration_s)

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
        span = now - self.first
        slow_window = self.slow.window(span)
        fast_window = self.fast.window(span) if self.fast is not None else 0.0
        estimated, recent = {}, set()
        for tier in self.slow.count:
            if tiers is not None and tier not in tiers:
                continue
            demand = self.slow.demand(tier, slow_window)
            if demand is None:
                continue
            if self.fast is not None and self._shifted(tier, demand, fast_window):
                demand = self.fast.demand(tier, fast_window) or demand
                recent.add(tier)
            estimated[tier] = demand
        return Demand(tiers=estimated, limits=dict(limits or {}), recent=frozenset(recent))

    def _shifted(self, tier: str, slow: TierDemand, fast_window: float) -> bool:
        """Tell whether the tier's recent arrivals are too many or too few for the long rate."""
        assert self.fast is not None
        expected = slow.rate_per_s * fast_window
        seen = self.fast.count.get(tier, 0.0)
        return abs(seen - expected) > self.shift_z * math.sqrt(max(expected, 1.0))

    def _stats(self) -> tuple[_Decayed, ...]:
        return (self.slow,) if self.fast is None else (self.slow, self.fast)

    def _age(self, at: float) -> None:
        if self.first is None or self.last is None:
            self.first = self.last = at
            return
        if at <= self.last:
            return
        for stats in self._stats():
            stats.age(at - self.last)
        self.last = at


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
    paused: frozenset[str] = frozenset(),
) -> list[NodeMove]:
    """Move idle nodes to the tiers where they are worth more, before anyone asks for them.

    A node moves only when its new tier gains more than (1 + `prices.move_margin`) times what
    its pool loses, and the donor keeps its reservations. The largest net gain goes first, up
    to the free move slots; pools are priced again after each pick. Nodes with GPU pods never
    move (they are drained: `rebalance_drains`, or `place` for a request that waits). No node
    moves toward a `paused` tier.
    """
    slots = max_in_flight - in_flight
    if slots <= 0:
        return []
    pools = summarise(
        inventory=inventory, reservations=reservations, tiers=tiers, waiting=waiting, prices=prices, paused=paused
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


def rebalance_drains(
    *,
    inventory: Sequence[NodeState],
    reservations: Reservations,
    tiers: Mapping[str, TierSpec],
    waiting: Mapping[str, int] | None,
    prices: Prices,
    max_draining: int,
    deadline: float | None = None,
    paused: frozenset[str] = frozenset(),
) -> list[NodeDrain]:
    """Drain busy nodes for the tiers where they are worth more, before anyone waits for them.

    `rebalance` moves only idle nodes, and under load few nodes are ever idle: a split that
    demand has outgrown would stay until some request waits for a node that empties in time. A
    busy node is drained (its pool admits no new lease on it; it moves once empty) when the
    target tier gains more than (1 + `prices.drain_margin`) times what its pool loses. The
    largest net gain goes first, and among nodes alike the one that empties soonest; at most
    `max_draining` busy nodes drain at once, counting those draining already; pools are priced
    again after each pick. A node not known to empty by `deadline` is left alone: its drain
    would be given up (leases.moves.overdue_drains). No node drains toward a `paused` tier.
    """
    draining = sum(1 for n in inventory if n.schedulable and n.target_tier is not None and n.gpu_pods > 0)
    slots = max_draining - draining
    if slots <= 0:
        return []
    pools = summarise(
        inventory=inventory, reservations=reservations, tiers=tiers, waiting=waiting, prices=prices, paused=paused
    )
    chosen: list[NodeDrain] = []
    while len(chosen) < slots:
        best: tuple[tuple, NodeState, TierSpec] | None = None
        for spec in tiers.values():
            if spec.name in paused:
                continue
            nets: dict[tuple[str, int], float | None] = {}  # nodes alike are priced alike
            for node in pools.busy.get(spec.gpu_model, ()):
                if node.tier == spec.name or node.tier is None or not_empty_by(node, deadline):
                    continue
                kind = (node.tier, node.gpus)
                if kind not in nets:
                    candidate = busy_candidate(pools, node)
                    loss = drain_loss(pools, candidate, spec)
                    nets[kind] = None if loss is None else move_gain(pools, candidate, spec) - loss
                net = nets[kind]
                if net is None:
                    continue
                empties = node.empties_at if node.empties_at is not None else math.inf
                key = (-net, empties, node.name)
                if best is None or key < best[0]:
                    best = (key, node, spec)
        if best is None:
            break
        _, node, spec = best
        chosen.append(NodeDrain.of(node, spec.name))
        pools.commit_drain(busy_candidate(pools, node), spec)
    return chosen
