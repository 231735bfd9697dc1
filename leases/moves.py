"""Elastic pools: a one-pass summary of every pool, and the choice of nodes to move or drain.

The half of placement that decides which node changes tier (DESIGN §4): only idle nodes
(no GPU pods) of the target tier's GPU model move; a donor pool must still hold its
reservations, and the demand already waiting for it, without the node; the cheapest move wins.
When no idle node can be spared, `choose_drain` names a busy node to drain: it keeps serving the
leases already on its pool but takes no new one, so it empties (`stale_drains` gives drains back).

With `Prices` (a valuation of pools, e.g. leases.rebalance.Demand learned from arrivals), a
move or a drain must also gain the target tier more than it loses the donor, by a margin; the
donor may then give up a node its own queue wants, when the node is worth more elsewhere.
Pure functions over plain data; leases.placement and leases.rebalance are the callers, bench
reads the summary. Imports only leases.capacity (and through it config).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from leases.capacity import (
    CONFIG_SUCCESS,
    NodeState,
    Reservations,
    TierSpec,
    node_problem,
    reserved_by_tier,
)

__all__ = [
    "Candidate",
    "busy_candidate",
    "candidate_kind",
    "MovePlan",
    "NodeDrain",
    "NodeMove",
    "Pools",
    "Prices",
    "Valuation",
    "choose_drain",
    "donor_loss",
    "drain_loss",
    "move_gain",
    "move_of",
    "movable",
    "plan_move",
    "stale_drains",
    "summarise",
    "worth",
]


class Valuation(Protocol):
    """What a pool of `units` units of `tier` is worth (e.g. requests accepted per hour), and
    the units its leases would hold with unlimited room; leases.rebalance.Demand is one."""

    def value(self, tier: str, units: int) -> float: ...

    def offered(self, tier: str) -> float: ...


@dataclass(frozen=True)
class Prices:
    """Price nodes with `valuation`: a move of an idle node must gain its new tier more than
    (1 + `move_margin`) times what its pool loses, a drain (hours of a node serving only the
    leases already on it) more than (1 + `drain_margin`) times. Gains and losses are taken
    with the moves and drains under way counted where they are going.

    `fallback_share` is the share of requesters who take a fallback tier when theirs is full:
    a tier's requests turned away are then partly served by its fallbacks' pools, so a node
    is worth less to a tier whose fallbacks have room (see `worth`)."""

    valuation: Valuation
    move_margin: float = 0.1
    drain_margin: float = 0.5
    fallback_share: float = 0.0


@dataclass(frozen=True)
class NodeMove:
    """Move one node from `from_tier` (None: an unlabelled node) to `to_tier`.

    The mover cordons it, checks it has no GPU pod, sets `nvidia.com/mig.config` to
    `node_config` (when not None) and `nvidia.com/device-plugin.config` to `plugin_config`
    (None: unset), waits for success and the new allocatable (`units_gained`), relabels and
    uncordons. `units_lost` is what the donor pool had from it.
    """

    node: str
    from_tier: str | None
    to_tier: str
    node_config: str | None
    plugin_config: str | None
    units_lost: int
    units_gained: int


@dataclass(frozen=True)
class MovePlan:
    """The nodes to move for one placement, cheapest first."""

    moves: tuple[NodeMove, ...]

    @property
    def units_gained(self) -> int:
        """Return the units the target tier gains once every move has finished."""
        return sum(m.units_gained for m in self.moves)

    @property
    def nodes(self) -> tuple[str, ...]:
        """Return the names of the nodes to move."""
        return tuple(m.node for m in self.moves)


@dataclass(frozen=True)
class NodeDrain:
    """Drain `node` for `to_tier`: annotate it with the target tier and taint it PreferNoSchedule,
    so its pool admits no new lease on it and it empties (at `empties_at`, POSIX seconds, when
    known); then it can move."""

    node: str
    from_tier: str
    to_tier: str
    gpu_pods: int
    empties_at: float | None = None

    @classmethod
    def of(cls, node: NodeState, to_tier: str) -> NodeDrain:
        """Return the drain of a busy node for `to_tier`."""
        return cls(
            node=node.name,
            from_tier=node.tier or "",
            to_tier=to_tier,
            gpu_pods=node.gpu_pods,
            empties_at=node.empties_at,
        )


@dataclass(frozen=True)
class Candidate:
    """An idle node that could move: from a pool, unlabelled, or already drained."""

    node: NodeState
    from_tier: str | None
    units_held: int
    lossless: bool


@dataclass
class Pools:
    """Every pool summarised in one pass over the inventory; the input of each decision.

    `capacity` counts nodes open to new leases; `draining` the units of draining nodes (live
    leases may still use them); `incoming` the units of nodes draining or moving toward a tier.
    `held` is what each pool will have once the moves and drains under way are done (open
    nodes plus nodes on their way to it): with `prices`, moves and drains are priced from it.
    `drain_busy` and `drain_empties` are the units of a pool's draining nodes that still hold
    leases, and when the first of them empties. `paused` names the tiers no node may move or
    drain toward now (a reconfiguration to them failed lately).
    """

    tiers: Mapping[str, TierSpec]
    capacity: dict[str, int]
    reserved: dict[str, int]
    waiting: dict[str, int]
    draining: dict[str, int] = field(default_factory=dict)
    incoming: dict[str, int] = field(default_factory=dict)
    idle: dict[str, list[Candidate]] = field(default_factory=dict)
    busy: dict[str, list[NodeState]] = field(default_factory=dict)
    gpus_by_model: dict[str, int] = field(default_factory=dict)
    prices: Prices | None = None
    held: dict[str, int] = field(default_factory=dict)
    drain_busy: dict[str, int] = field(default_factory=dict)
    drain_empties: dict[str, float] = field(default_factory=dict)
    paused: frozenset[str] = frozenset()

    def free(self, tier: str) -> int:
        """Return units of `tier` that new leases may reserve now."""
        return max(0, self.capacity.get(tier, 0) - self.reserved.get(tier, 0))

    def room_until(self, tier: str, ends_at: float | None) -> int:
        """Return units of `tier` a lease ending at `ends_at` may reserve now: the free units,
        plus those of the pool's busy draining nodes when the lease ends before every one of
        them empties anyway (it then delays no move)."""
        free = self.free(tier)
        busy = self.drain_busy.get(tier, 0)
        if ends_at is None or busy == 0 or ends_at > self.drain_empties.get(tier, float("-inf")):
            return free
        return max(free, self.capacity.get(tier, 0) + busy - self.reserved.get(tier, 0))

    def spare(self, tier: str, *, lost: int) -> int:
        """Return the units `tier` has beyond its reservations and queue after losing `lost`."""
        return self.capacity.get(tier, 0) - lost - self.reserved.get(tier, 0) - self.waiting.get(tier, 0)

    def ever(self, tier: str) -> int:
        """Return the units `tier` would have if every node of its GPU model served it."""
        spec = self.tiers[tier]
        return self.gpus_by_model.get(spec.gpu_model, 0) * spec.units_per_gpu

    def commit(self, move: NodeMove) -> None:
        """Account for a move just chosen, so the next choice sees it under way."""
        for candidates in self.idle.values():
            found = next((c for c in candidates if c.node.name == move.node), None)
            if found is None:
                continue
            candidates.remove(found)
            self.hold_moved(found, move)
            if not found.lossless and found.from_tier is not None:
                self.capacity[found.from_tier] -= found.units_held
            break
        else:
            self.held[move.to_tier] = self.held.get(move.to_tier, 0) + move.units_gained
        self.incoming[move.to_tier] = self.incoming.get(move.to_tier, 0) + move.units_gained

    def commit_drain(self, candidate: Candidate, target: TierSpec) -> None:
        """Account for a drain just chosen (of a busy node), so the next choice sees it under way."""
        self.busy[candidate.node.gpu_model].remove(candidate.node)  # type: ignore[index]
        self.hold_moved(candidate, move_of(candidate, target))
        self.capacity[candidate.from_tier] -= candidate.units_held  # type: ignore[index]

    def hold_moved(self, candidate: Candidate, move: NodeMove) -> None:
        """Count the candidate's units in `held` where `move` takes them, not where they were."""
        holder = _holder(candidate)
        if holder is not None:
            self.held[holder] = self.held.get(holder, 0) - _units_for(self, candidate, holder)
        self.held[move.to_tier] = self.held.get(move.to_tier, 0) + move.units_gained


def summarise(
    *,
    inventory: Sequence[NodeState],
    reservations: Reservations,
    tiers: Mapping[str, TierSpec],
    waiting: Mapping[str, int] | None = None,
    prices: Prices | None = None,
    paused: frozenset[str] = frozenset(),
) -> Pools:
    """Summarise capacity, reservations, idle and busy nodes of every pool in one pass.

    `waiting` is units per tier of requests in the waitlist; `prices` prices moves and drains
    (None: the donor rules alone decide); `paused`: tiers no node may move or drain toward.
    """
    pools = Pools(
        tiers=tiers,
        capacity=dict.fromkeys(tiers, 0),
        reserved=reserved_by_tier(reservations),
        waiting=dict(waiting or {}),
        draining=dict.fromkeys(tiers, 0),
        incoming=dict.fromkeys(tiers, 0),
        prices=prices,
        paused=paused,
    )
    for node in inventory:
        if node.gpu_model is not None:
            pools.gpus_by_model[node.gpu_model] = pools.gpus_by_model.get(node.gpu_model, 0) + node.gpus
        spec = tiers.get(node.tier) if node.tier is not None else None
        if spec is None:
            # Unlabelled nodes join any pool of their model; nodes labelled with a tier the
            # policy does not know are someone else's and never touched.
            if node.tier is None and _blank_and_ready(node):
                pools.idle.setdefault(node.gpu_model, []).append(Candidate(node, None, 0, True))
            continue
        target = tiers.get(node.target_tier) if node.target_tier is not None else None
        if not node.schedulable:
            if target is not None and node.healthy and node.gpu_pods == 0:
                # Cordoned for a move that has not finished: its capacity is on its way to
                # the target and counts for neither tier until then.
                pools.incoming[target.name] += node.gpus * target.units_per_gpu
            continue  # otherwise cordoned by an admin: hands off
        if node_problem(node=node, spec=spec) is not None:
            continue
        units = node.gpus * spec.units_per_gpu
        if target is not None:
            # Draining: live leases of its pool may still use it, new ones may not.
            pools.draining[spec.name] += units
            if node.gpu_pods == 0:
                pools.idle.setdefault(spec.gpu_model, []).append(Candidate(node, spec.name, 0, True))
                pools.held[target.name] = pools.held.get(target.name, 0) + node.gpus * target.units_per_gpu
            else:
                pools.incoming[target.name] += node.gpus * target.units_per_gpu
                pools.drain_busy[spec.name] = pools.drain_busy.get(spec.name, 0) + units
                empties = node.empties_at if node.empties_at is not None else float("-inf")
                pools.drain_empties[spec.name] = min(pools.drain_empties.get(spec.name, empties), empties)
            continue
        pools.capacity[spec.name] += units
        if node.gpu_pods == 0:
            pools.idle.setdefault(spec.gpu_model, []).append(Candidate(node, spec.name, units, False))
        else:
            pools.busy.setdefault(spec.gpu_model, []).append(node)
    for tier in tiers:
        pools.held[tier] = pools.held.get(tier, 0) + pools.capacity[tier] + pools.incoming[tier]
    return pools


def _blank_and_ready(node: NodeState) -> bool:
    return (
        node.gpu_model is not None
        and node.healthy
        and node.schedulable
        and node.gpu_pods == 0
        and node.config_state in (CONFIG_SUCCESS, None)
    )


def move_of(candidate: Candidate, target: TierSpec) -> NodeMove:
    """Return the move of `candidate` to `target`."""
    return NodeMove(
        node=candidate.node.name,
        from_tier=candidate.from_tier,
        to_tier=target.name,
        node_config=target.node_config,
        plugin_config=target.plugin_config,
        units_lost=candidate.units_held,
        units_gained=candidate.node.gpus * target.units_per_gpu,
    )


def _holder(candidate: Candidate) -> str | None:
    """Return the tier whose `held` units count the candidate (a drained node: its target)."""
    if candidate.lossless:
        return candidate.node.target_tier if candidate.from_tier is not None else None
    return candidate.from_tier


def _units_for(pools: Pools, candidate: Candidate, tier: str) -> int:
    spec = pools.tiers.get(tier)
    return candidate.node.gpus * spec.units_per_gpu if spec is not None else 0


def worth(pools: Pools, tier: str, more: int) -> float:
    """Return what `more` units (negative: fewer) change the value of `tier`'s pool, by the
    prices (0 without them).

    Requests a pool turns away are not all lost when requesters take fallbacks: a share
    `fallback_share` of them is served by the fallback pool that covers the most: the share of
    its own requests it accepts (value at its size over value with unlimited room) times the
    share of it its own leases leave free on average. A change of size is worth only the part
    its fallbacks would not have covered.
    """
    prices = pools.prices
    if prices is None:
        return 0.0
    held, value = pools.held, prices.valuation.value
    now = held.get(tier, 0)
    change = abs(value(tier, now + more) - value(tier, now))  # values grow with the units
    spec = pools.tiers.get(tier)
    if prices.fallback_share <= 0 or spec is None:
        return change
    covered = 0.0
    for fallback in spec.fallback:
        size = held.get(fallback, 0)
        if size <= 0 or fallback not in pools.tiers:
            continue
        unlimited = value(fallback, 1 << 30)
        accepted = value(fallback, size) / unlimited if unlimited > 0 else 1.0
        # Expected, not current, room: reservations come and go with every lease, and prices
        # that follow them would move nodes back and forth.
        room = max(0.0, 1.0 - prices.valuation.offered(fallback) / size)
        covered = max(covered, accepted * room)
    return change * (1.0 - prices.fallback_share * covered)


def move_gain(pools: Pools, candidate: Candidate, target: TierSpec) -> float:
    """Return what `target` gains, by the prices, from the candidate node (0 without prices)."""
    if pools.prices is None or _holder(candidate) == target.name:
        return 0.0
    return worth(pools, target.name, candidate.node.gpus * target.units_per_gpu)


def donor_loss(pools: Pools, candidate: Candidate) -> float:
    """Return what the pool counting the candidate loses, by the prices, without it."""
    holder = _holder(candidate)
    if pools.prices is None or holder is None or holder not in pools.tiers:
        return 0.0
    return worth(pools, holder, -_units_for(pools, candidate, holder))


def _priced_loss(pools: Pools, candidate: Candidate, target: TierSpec, margin: float) -> float | None:
    """Return what the candidate's pool loses without it, or None when `target` gains less
    than (1 + `margin`) times that (and a hair: pools do not trade nodes on rounding)."""
    if _holder(candidate) == target.name:
        return 0.0  # drained for this very tier: the move only finishes what was decided
    loss = donor_loss(pools, candidate)
    if pools.prices is None:
        return loss
    if move_gain(pools, candidate, target) <= (1.0 + margin) * loss + 1e-9:
        return None
    return loss


def _cost(pools: Pools, candidate: Candidate, target: TierSpec, margin: float | None = None) -> tuple | None:
    """Order moves cheapest first; None when the donor cannot spare the node.

    With prices, a move must also be worth it by `margin` (default: the prices' move margin).
    """
    name = candidate.node.name
    if pools.prices is not None and margin is None:
        margin = pools.prices.move_margin
    if candidate.lossless:
        donor = candidate.from_tier
        if donor is not None and pools.capacity.get(donor, 0) < pools.reserved.get(donor, 0):
            return None  # drained, but the live leases of its pool do not fit without it yet
        loss = _priced_loss(pools, candidate, target, margin or 0.0)
        if loss is None:
            return None
        # A node drained for this very tier was emptied for it; prefer it over one drained
        # for another tier, whose demand may still come back for it.
        return (0, loss, 0 if candidate.node.target_tier == target.name else 1, name)
    donor = pools.tiers[candidate.from_tier]  # type: ignore[index]
    spare = pools.spare(donor.name, lost=candidate.units_held)
    if pools.prices is not None:
        # Priced: the donor keeps its reservations; whether its queue or the target's request
        # is worth the node more is the prices' call.
        if pools.capacity.get(donor.name, 0) - candidate.units_held < pools.reserved.get(donor.name, 0):
            return None
        loss = _priced_loss(pools, candidate, target, margin or 0.0)
        if loss is None:
            return None
        return (1, loss, candidate.node.gpus, -spare / donor.units_per_gpu, name)
    if spare < 0:
        return None
    # Fewest GPUs taken from a serving pool, then the donor left with the most slack (in GPUs,
    # so tiers with different unit sizes compare), so it is the least likely to want it back.
    return (1, candidate.node.gpus, -spare / donor.units_per_gpu, name)


def movable(*, pools: Pools, target: TierSpec, margin: float | None = None) -> list[tuple[tuple, Candidate]]:
    """List the idle nodes that could move to `target` now, each with its cost."""
    costed: list[tuple[tuple, Candidate]] = []
    if target.name in pools.paused:
        return costed
    # Idle nodes alike (same pool, drain target and size) cost the same but for their name,
    # which breaks ties last: price one of each kind (hundreds of idle nodes on big clusters).
    kinds: dict[tuple, tuple | None] = {}
    for candidate in pools.idle.get(target.gpu_model, ()):
        if candidate.from_tier == target.name:
            continue
        kind = candidate_kind(candidate)
        if kind in kinds:
            priced = kinds[kind]
            cost = None if priced is None else (*priced[:-1], candidate.node.name)
        else:
            cost = kinds[kind] = _cost(pools, candidate, target, margin)
        if cost is not None:
            costed.append((cost, candidate))
    return costed


def candidate_kind(candidate: Candidate) -> tuple:
    """Return what `_cost` reads of a candidate, besides its name."""
    node = candidate.node
    return (candidate.from_tier, candidate.lossless, candidate.units_held, node.gpus, node.target_tier)


def plan_move(*, pools: Pools, target: TierSpec, need: int, required: int, slots: int) -> MovePlan | None:
    """Choose idle nodes to move to `target`: `need` units if possible, at least `required`."""
    if slots <= 0 or need <= 0:
        return None
    costed = movable(pools=pools, target=target)
    if not costed:
        return None
    per_gpu = target.units_per_gpu
    covering = [(cost, c) for cost, c in costed if c.node.gpus * per_gpu >= need]
    if covering:
        _, best = min(covering, key=lambda pair: pair[0])
        return MovePlan(moves=(move_of(best, target),))
    # No single node covers the need: fewest nodes first (largest gain), then cheapest.
    costed.sort(key=lambda pair: (-pair[1].node.gpus, pair[0]))
    lost: dict[str, int] = {}
    chosen: list[NodeMove] = []
    gained = 0
    held = dict(pools.held)
    try:
        for _, candidate in costed:
            if len(chosen) >= slots or gained >= need:
                break
            if chosen and _cost(pools, candidate, target) is None:
                continue  # priced again with the nodes already chosen on their way
            donor = candidate.from_tier
            if not candidate.lossless and donor is not None:
                taken = lost.get(donor, 0) + candidate.units_held
                if pools.prices is None and pools.spare(donor, lost=taken) < 0:
                    continue
                if pools.capacity.get(donor, 0) - taken < pools.reserved.get(donor, 0):
                    continue
                lost[donor] = taken
            move = move_of(candidate, target)
            chosen.append(move)
            gained += move.units_gained
            pools.hold_moved(candidate, move)
    finally:
        pools.held = held
    if not chosen or gained < required:
        return None
    return MovePlan(moves=tuple(chosen))


def busy_candidate(pools: Pools, node: NodeState) -> Candidate:
    """Return a busy node of a pool as a candidate to drain: its pool loses all its units."""
    donor = pools.tiers[node.tier]  # type: ignore[index]
    return Candidate(node, donor.name, node.gpus * donor.units_per_gpu, False)


def drain_loss(pools: Pools, candidate: Candidate, target: TierSpec) -> float | None:
    """Return what the candidate's pool loses, by the prices, when it is drained for `target`;
    None when `target` gains less than (1 + the drain margin) times that."""
    margin = pools.prices.drain_margin if pools.prices is not None else 0.0
    return _priced_loss(pools, candidate, target, margin)


def empties_too_late(node: NodeState, by: float | None) -> bool:
    """Tell whether the node is known to empty only after `by` (None: no limit)."""
    return by is not None and node.empties_at is not None and node.empties_at > by


def not_empty_by(node: NodeState, deadline: float | None) -> bool:
    """Tell whether the node is not known to empty by `deadline` (None: no deadline): it empties
    later, or when is unknown (a GPU pod that is no lease's)."""
    return deadline is not None and (node.empties_at is None or node.empties_at > deadline)


def choose_drain(
    *, pools: Pools, target: TierSpec, wait_until: float | None = None, deadline: float | None = None
) -> NodeDrain | None:
    """Choose a busy node to drain for `target`: its pool holds its reservations and queue
    without it (with prices: the target gains more than the pool loses, by the drain margin),
    and it empties soonest.

    A node known to empty only after `wait_until` (when the request stops waiting) is skipped:
    taking it out of its pool would serve nobody in time; so is one not known to empty by
    `deadline`, when its drain would be given up (`overdue_drains`).
    """
    best: tuple | None = None
    chosen: NodeState | None = None
    if target.name in pools.paused:
        return None
    for node in pools.busy.get(target.gpu_model, ()):
        donor = pools.tiers[node.tier]  # type: ignore[index]
        if donor.name == target.name:
            continue
        if empties_too_late(node, wait_until) or not_empty_by(node, deadline):
            continue
        spare = pools.spare(donor.name, lost=node.gpus * donor.units_per_gpu)
        loss = 0.0
        if pools.prices is not None:
            priced = drain_loss(pools, busy_candidate(pools, node), target)
            if priced is None:
                continue
            loss = priced
        elif spare < 0:
            continue
        # Soonest empty (lease expiries, when known), then fewest pods, then the donor that
        # misses it least.
        empties = node.empties_at if node.empties_at is not None else float("inf")
        key = (empties, node.gpu_pods, loss, -spare / donor.units_per_gpu, node.name)
        if best is None or key < best:
            best, chosen = key, node
    if chosen is None:
        return None
    return NodeDrain.of(chosen, target.name)


def stale_drains(
    *,
    inventory: Sequence[NodeState],
    reservations: Reservations,
    tiers: Mapping[str, TierSpec],
    waiting: Mapping[str, int],
    prices: Prices | None = None,
) -> list[str]:
    """List draining nodes to give back to their pool (clear the target-tier annotation).

    Without prices: nobody waits for their destination any more, and their own pool has a
    queue it cannot serve. Otherwise a drain is kept even when its demand is gone: once empty
    the node moves in minutes to whichever tier needs one next, and its pool does not miss it.
    With prices: when its own pool gains more from it back than its destination loses, by the
    move margin (the estimate changed since the drain began).
    """
    pools = summarise(
        inventory=inventory, reservations=reservations, tiers=tiers, waiting=waiting, prices=prices
    )
    stale = []
    for node in inventory:
        if not node.schedulable or node.target_tier is None:
            continue
        spec = tiers.get(node.tier) if node.tier is not None else None
        if spec is None or node_problem(node=node, spec=spec) is not None:
            continue
        target = tiers.get(node.target_tier)
        if prices is not None and target is not None:
            back, away = node.gpus * spec.units_per_gpu, node.gpus * target.units_per_gpu
            home, there = pools.held.get(spec.name, 0), pools.held.get(target.name, 0)
            gain = worth(pools, spec.name, back)
            loss = worth(pools, target.name, -away)
            if gain > (1.0 + prices.move_margin) * loss + 1e-9:
                stale.append(node.name)
                # Given back: the next one is priced with this one home again.
                pools.held[spec.name], pools.held[target.name] = home + back, there - away
            continue
        if waiting.get(node.target_tier, 0) > 0:
            continue
        if waiting.get(spec.name, 0) > pools.free(spec.name):
            stale.append(node.name)
    return stale


def overdue_drains(inventory: Iterable[NodeState], *, now: float, timeout_s: float) -> list[str]:
    """List draining nodes that still hold GPU pods `timeout_s` after their drain began: a drain
    waits that long at most, then the node goes back to its pool (a lease was extended, or a
    pod that is no lease's keeps running). A drain with no known start is never overdue."""
    return [
        node.name
        for node in inventory
        if node.schedulable
        and node.target_tier is not None
        and node.gpu_pods > 0
        and node.drain_started is not None
        and now - node.drain_started > timeout_s
    ]
