"""Elastic pools: a one-pass summary of every pool, and the choice of nodes to move or drain.

The half of placement that decides which node changes tier (DESIGN §4): only idle nodes
(no GPU pods) of the target tier's GPU model move; a donor pool must still hold its
reservations, and the demand already waiting for it, without the node; the cheapest move wins.
When no idle node can be spared, `choose_drain` names a busy node to drain: it keeps serving the
leases already on its pool but takes no new one, so it empties (`stale_drains` gives drains back).
Pure functions over plain data; leases.placement is the caller, bench reads the summary.
Imports only leases.capacity (and through it config).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

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
    "MovePlan",
    "NodeDrain",
    "NodeMove",
    "Pools",
    "choose_drain",
    "movable",
    "plan_move",
    "stale_drains",
    "summarise",
]


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
    so its pool admits no new lease on it and it empties; then it can move."""

    node: str
    from_tier: str
    to_tier: str
    gpu_pods: int


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

    def free(self, tier: str) -> int:
        """Return units of `tier` that new leases may reserve now."""
        return max(0, self.capacity.get(tier, 0) - self.reserved.get(tier, 0))

    def spare(self, tier: str, *, lost: int) -> int:
        """Return the units `tier` has beyond its reservations and queue after losing `lost`."""
        return self.capacity.get(tier, 0) - lost - self.reserved.get(tier, 0) - self.waiting.get(tier, 0)

    def ever(self, tier: str) -> int:
        """Return the units `tier` would have if every node of its GPU model served it."""
        spec = self.tiers[tier]
        return self.gpus_by_model.get(spec.gpu_model, 0) * spec.units_per_gpu


def summarise(
    *,
    inventory: Sequence[NodeState],
    reservations: Reservations,
    tiers: Mapping[str, TierSpec],
    waiting: Mapping[str, int] | None = None,
) -> Pools:
    """Summarise capacity, reservations, idle and busy nodes of every pool in one pass.

    `waiting` is units per tier of requests in the waitlist.
    """
    pools = Pools(
        tiers=tiers,
        capacity=dict.fromkeys(tiers, 0),
        reserved=reserved_by_tier(reservations),
        waiting=dict(waiting or {}),
        draining=dict.fromkeys(tiers, 0),
        incoming=dict.fromkeys(tiers, 0),
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
            else:
                pools.incoming[target.name] += node.gpus * target.units_per_gpu
            continue
        pools.capacity[spec.name] += units
        if node.gpu_pods == 0:
            pools.idle.setdefault(spec.gpu_model, []).append(Candidate(node, spec.name, units, False))
        else:
            pools.busy.setdefault(spec.gpu_model, []).append(node)
    return pools


def _blank_and_ready(node: NodeState) -> bool:
    return (
        node.gpu_model is not None
        and node.healthy
        and node.schedulable
        and node.gpu_pods == 0
        and node.config_state in (CONFIG_SUCCESS, None)
    )


def _move(candidate: Candidate, target: TierSpec) -> NodeMove:
    return NodeMove(
        node=candidate.node.name,
        from_tier=candidate.from_tier,
        to_tier=target.name,
        node_config=target.node_config,
        plugin_config=target.plugin_config,
        units_lost=candidate.units_held,
        units_gained=candidate.node.gpus * target.units_per_gpu,
    )


def _cost(pools: Pools, candidate: Candidate, target: TierSpec) -> tuple | None:
    """Order moves cheapest first; None when the donor cannot spare the node."""
    name = candidate.node.name
    if candidate.lossless:
        donor = candidate.from_tier
        if donor is not None and pools.capacity.get(donor, 0) < pools.reserved.get(donor, 0):
            return None  # drained, but the live leases of its pool do not fit without it yet
        # A node drained for this very tier was emptied for it; prefer it over one drained
        # for another tier, whose demand may still come back for it.
        return (0, 0, 0 if candidate.node.target_tier == target.name else 1, name)
    donor = pools.tiers[candidate.from_tier]  # type: ignore[index]
    spare = pools.spare(donor.name, lost=candidate.units_held)
    if spare < 0:
        return None
    # Fewest GPUs taken from a serving pool, then the donor left with the most slack (in GPUs,
    # so tiers with different unit sizes compare), so it is the least likely to want it back.
    return (1, candidate.node.gpus, -spare / donor.units_per_gpu, name)


def movable(*, pools: Pools, target: TierSpec) -> list[tuple[tuple, Candidate]]:
    """List the idle nodes that could move to `target` now, each with its cost."""
    costed = []
    for candidate in pools.idle.get(target.gpu_model, ()):
        if candidate.from_tier == target.name:
            continue
        cost = _cost(pools, candidate, target)
        if cost is not None:
            costed.append((cost, candidate))
    return costed


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
        return MovePlan(moves=(_move(best, target),))
    # No single node covers the need: fewest nodes first (largest gain), then cheapest.
    costed.sort(key=lambda pair: (-pair[1].node.gpus, pair[0]))
    lost: dict[str, int] = {}
    chosen: list[NodeMove] = []
    gained = 0
    for _, candidate in costed:
        if len(chosen) >= slots or gained >= need:
            break
        donor = candidate.from_tier
        if not candidate.lossless and donor is not None:
            taken = lost.get(donor, 0) + candidate.units_held
            if pools.spare(donor, lost=taken) < 0:
                continue
            lost[donor] = taken
        move = _move(candidate, target)
        chosen.append(move)
        gained += move.units_gained
    if not chosen or gained < required:
        return None
    return MovePlan(moves=tuple(chosen))


def choose_drain(*, pools: Pools, target: TierSpec, wait_until: float | None = None) -> NodeDrain | None:
    """Choose a busy node to drain for `target`: its pool holds its reservations and queue
    without it, and it empties soonest.

    A node known to empty only after `wait_until` (when the request stops waiting) is skipped:
    taking it out of its pool would serve nobody in time.
    """
    best: tuple | None = None
    chosen: NodeState | None = None
    for node in pools.busy.get(target.gpu_model, ()):
        donor = pools.tiers[node.tier]  # type: ignore[index]
        if donor.name == target.name:
            continue
        if wait_until is not None and node.empties_at is not None and node.empties_at > wait_until:
            continue
        spare = pools.spare(donor.name, lost=node.gpus * donor.units_per_gpu)
        if spare < 0:
            continue
        # Soonest empty (lease expiries, when known), then fewest pods, then the donor with the
        # most slack left.
        empties = node.empties_at if node.empties_at is not None else float("inf")
        key = (empties, node.gpu_pods, -spare / donor.units_per_gpu, node.name)
        if best is None or key < best:
            best, chosen = key, node
    if chosen is None:
        return None
    return NodeDrain(
        node=chosen.name, from_tier=chosen.tier or "", to_tier=target.name, gpu_pods=chosen.gpu_pods
    )


def stale_drains(
    *,
    inventory: Sequence[NodeState],
    reservations: Reservations,
    tiers: Mapping[str, TierSpec],
    waiting: Mapping[str, int],
) -> list[str]:
    """List draining nodes to give back to their pool (clear the target-tier annotation):
    nobody waits for their destination any more, and their own pool has a queue it cannot serve.

    Otherwise a drain is kept even when its demand is gone: once empty the node moves in
    minutes to whichever tier needs one next, and its pool does not miss it.
    """
    pools = summarise(inventory=inventory, reservations=reservations, tiers=tiers, waiting=waiting)
    stale = []
    for node in inventory:
        if not node.schedulable or node.target_tier is None or waiting.get(node.target_tier, 0) > 0:
            continue
        spec = tiers.get(node.tier) if node.tier is not None else None
        if spec is None or node_problem(node=node, spec=spec) is not None:
            continue
        if waiting.get(spec.name, 0) > pools.free(spec.name):
            stale.append(node.name)
    return stale
