"""Capacity of GPU node pools: what each node gives its tier, what each pool holds and has free.

A node serves one tier at a time (DESIGN §4). Its units in that tier come from the GPU catalog
(GPUs × units per GPU) and are cross-checked against what the node reports: allocatable
`nvidia.com/gpu`, `nvidia.com/mig.config(.state)` and its GPU model. A node that disagrees is
not counted, and says why. Pure functions over plain data, no I/O: inventory code (in
provisioners) builds `NodeState`s from Kubernetes Node objects; placement, the store's
reservation checks and bench import this module. It imports only config and leases.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from config.policy import Policy, Tier, TierMode
from leases import gpu_catalog
from leases.tiers import units_per_gpu as tier_units_per_gpu

__all__ = [
    "NodeCapacity",
    "NodeState",
    "Reservation",
    "TierSpec",
    "assess_node",
    "assess_nodes",
    "free_units",
    "node_problem",
    "node_units",
    "pool_capacity",
    "reserved_by_tier",
    "tier_spec",
    "tier_specs",
]

# Values of `nvidia.com/mig.config.state` (reference/gpu.md §2); None: no MIG manager reports.
CONFIG_SUCCESS = "success"


@dataclass(frozen=True)
class NodeState:
    """One GPU node as the inventory sees it.

    `tier` is the node's `gpulease.io/tier` label; `schedulable` is False when cordoned;
    `target_tier` is the `gpulease.io/target-tier` annotation the placer sets on a node it
    drains for, or moves to, another tier (cleared once relabelled or given back). A draining
    node stays schedulable (with a PreferNoSchedule taint) so the leases already on its pool
    keep their room, but no new lease is admitted on its capacity; a node being moved is
    cordoned. `healthy`/`reason` carry what the inventory itself found wrong (NotReady, GPU
    errors); the capacity checks below add their own reasons. `empties_at` is when the last
    lease with GPU pods on the node expires (POSIX seconds, from the store), None if unknown.
    `drain_started` is when the placer began draining the node (POSIX seconds, from its
    `gpulease.io/draining-since` annotation), None if it is not draining or nobody said.
    """

    name: str
    gpu_model: str | None
    gpus: int
    tier: str | None
    schedulable: bool = True
    allocatable_gpu: int = 0
    gpu_pods: int = 0
    mig_config: str | None = None
    config_state: str | None = CONFIG_SUCCESS
    healthy: bool = True
    reason: str | None = None
    target_tier: str | None = None
    empties_at: float | None = None
    drain_started: float | None = None


@dataclass(frozen=True)
class TierSpec:
    """A policy tier resolved against the GPU catalog: what its nodes look like.

    `node_config` is the mig-parted config its nodes carry (`all-disabled` for whole or
    time-sliced GPUs of a MIG-capable model; None for models without MIG); `plugin_config` is
    the device-plugin config key of a time-sliced tier (None: the plugin's default).
    """

    name: str
    gpu_model: str
    mode: TierMode
    units_per_gpu: int
    node_config: str | None
    plugin_config: str | None = None
    max_units: int = 1
    fallback: tuple[str, ...] = ()
    priority: int = 0

    def gpu_cost(self, units: int) -> float:
        """Return what `units` of this tier cost in whole GPUs."""
        return units / self.units_per_gpu


@dataclass(frozen=True)
class NodeCapacity:
    """What one node gives its tier: `units` counted for new placements, and why not if 0.

    `expected` is what the catalog says the node gives its labelled tier; `sound` is True when
    the node agrees with the catalog and is healthy (cordoned nodes can be sound), so it could
    be moved or uncordoned; `draining` is sound, schedulable and annotated with a target tier:
    live leases may still use it, new ones may not; `counted` is sound, schedulable and not
    draining.
    """

    node: NodeState
    tier: str | None
    expected: int
    sound: bool
    counted: bool
    reason: str | None
    draining: bool = False

    @property
    def units(self) -> int:
        """Return the units this node adds to its pool for new placements."""
        return self.expected if self.counted else 0


@dataclass(frozen=True)
class Reservation:
    """Units of a tier held by one live lease."""

    lease_id: str
    tier: str
    units: int


Reservations = Mapping[str, int] | Iterable[Reservation | tuple[str, str, int]]


def tier_spec(tier: Tier) -> TierSpec:
    """Resolve a policy tier against the GPU catalog."""
    model = gpu_catalog.get_model(tier.gpu_model)
    plugin_config = None
    if tier.mode is TierMode.MIG:
        node_config = tier.node_config or gpu_catalog.mig_config_for(model, tier.mig_profile or "")
    else:
        node_config = "all-disabled" if model.mig else None
        if tier.mode is TierMode.TIMESLICE:
            plugin_config = tier.node_config or f"time-sliced-{tier.replicas}"
    return TierSpec(
        name=tier.name,
        gpu_model=model.id,
        mode=tier.mode,
        units_per_gpu=tier_units_per_gpu(tier),
        node_config=node_config,
        plugin_config=plugin_config,
        max_units=tier.max_units,
        fallback=tuple(tier.fallback),
        priority=tier.priority,
    )


def tier_specs(policy: Policy) -> dict[str, TierSpec]:
    """Resolve every tier of the policy, by name."""
    return {tier.name: tier_spec(tier) for tier in policy.tiers}


def node_units(*, node: NodeState, spec: TierSpec) -> int:
    """Return the units the node would give `spec`'s tier: GPUs × units per GPU."""
    return node.gpus * spec.units_per_gpu


def node_problem(*, node: NodeState, spec: TierSpec) -> str | None:
    """Say why the node cannot serve `spec`'s tier as configured now, or None if it can."""
    if not node.healthy:
        return node.reason or "node reported unhealthy"
    if node.gpu_model != spec.gpu_model:
        return f"GPU model {node.gpu_model or 'unknown'} is not the tier's {spec.gpu_model}"
    if node.config_state not in (CONFIG_SUCCESS, None):
        return f"mig.config.state is {node.config_state}, not success"
    if node.mig_config is not None and spec.node_config is not None and node.mig_config != spec.node_config:
        return f"mig.config is {node.mig_config}, tier {spec.name} needs {spec.node_config}"
    expected = node_units(node=node, spec=spec)
    if node.allocatable_gpu != expected:
        return (
            f"allocatable nvidia.com/gpu is {node.allocatable_gpu}, expected {expected} "
            f"({node.gpus} GPUs × {spec.units_per_gpu} for tier {spec.name})"
        )
    return None


def product_problem(*, product: str | None, spec: TierSpec) -> str | None:
    """Say why a node's `nvidia.com/gpu.product` label does not show `spec`'s configuration,
    or None when it does. GPU Feature Discovery relabels a node once its devices changed (a
    MIG profile suffix under the single strategy, `-SHARED` when time-sliced), so this is the
    evidence that a reconfiguration was applied, which a `mig.config.state=success` left over
    from the previous one is not."""
    if product is None:
        return "no nvidia.com/gpu.product label"
    parsed = gpu_catalog.parse_product(product)
    if spec.mode is TierMode.MIG:
        layout = gpu_catalog.get_model(spec.gpu_model).mig_configs.get(spec.node_config or "") or {}
        wanted = next(iter(layout), None)  # the single strategy: one profile per node
        if parsed.mig_profile is None or (wanted is not None and parsed.mig_profile != wanted):
            return f"gpu.product is {product}, not MIG {wanted or 'instances'} as {spec.name} needs"
    elif parsed.mig_profile is not None:
        return f"gpu.product is {product}, with MIG instances {spec.name} does not use"
    if parsed.shared != (spec.mode is TierMode.TIMESLICE):
        return f"gpu.product is {product}: {spec.name} is {'' if spec.mode is TierMode.TIMESLICE else 'not '}time-sliced"
    return None


def assess_node(*, node: NodeState, tiers: Mapping[str, TierSpec]) -> NodeCapacity:
    """Work out what the node gives its labelled tier, or why it is not counted."""
    if node.tier is None:
        return NodeCapacity(node, None, 0, False, False, "no gpulease.io/tier label")
    spec = tiers.get(node.tier)
    if spec is None:
        return NodeCapacity(node, node.tier, 0, False, False, f"unknown tier {node.tier}")
    expected = node_units(node=node, spec=spec)
    problem = node_problem(node=node, spec=spec)
    if problem is not None:
        return NodeCapacity(node, node.tier, expected, False, False, problem)
    if not node.schedulable:
        return NodeCapacity(node, node.tier, expected, True, False, "cordoned")
    if node.target_tier is not None:
        return NodeCapacity(node, node.tier, expected, True, False, f"draining for {node.target_tier}", True)
    return NodeCapacity(node, node.tier, expected, True, True, None)


def assess_nodes(*, inventory: Iterable[NodeState], tiers: Mapping[str, TierSpec]) -> list[NodeCapacity]:
    """Assess every node of the inventory."""
    return [assess_node(node=node, tiers=tiers) for node in inventory]


def pool_units(
    *, inventory: Iterable[NodeState], tiers: Mapping[str, TierSpec]
) -> tuple[dict[str, int], dict[str, int]]:
    """Return units per tier on counted nodes (healthy, consistent, not cordoned, not draining:
    room for new leases) and on draining nodes (room only for live leases), assessing each
    node once."""
    counted, draining = dict.fromkeys(tiers, 0), dict.fromkeys(tiers, 0)
    for assessed in assess_nodes(inventory=inventory, tiers=tiers):
        if assessed.tier is None:
            continue
        if assessed.counted:
            counted[assessed.tier] += assessed.expected
        elif assessed.draining:
            draining[assessed.tier] += assessed.expected
    return counted, draining


def pool_capacity(
    *, inventory: Iterable[NodeState], tiers: Mapping[str, TierSpec], include_draining: bool = False
) -> dict[str, int]:
    """Return units per tier for new leases: counted nodes (healthy, consistent, not cordoned,
    not draining); with `include_draining`, the units live leases can use, draining nodes too."""
    counted, draining = pool_units(inventory=inventory, tiers=tiers)
    if not include_draining:
        return counted
    return {tier: units + draining[tier] for tier, units in counted.items()}


def reserved_by_tier(reservations: Reservations) -> dict[str, int]:
    """Sum reserved units per tier from a tier → units mapping or (lease, tier, units) rows."""
    if isinstance(reservations, Mapping):
        return {tier: int(units) for tier, units in reservations.items()}
    reserved: dict[str, int] = {}
    for row in reservations:
        if isinstance(row, Reservation):
            tier, units = row.tier, row.units
        else:
            _, tier, units = row
        reserved[tier] = reserved.get(tier, 0) + units
    return reserved


def free_units(
    *, inventory: Sequence[NodeState], reservations: Reservations, tiers: Mapping[str, TierSpec]
) -> dict[str, int]:
    """Return units per tier that new leases may still reserve (never below 0)."""
    capacity = pool_capacity(inventory=inventory, tiers=tiers)
    reserved = reserved_by_tier(reservations)
    return {tier: max(0, capacity[tier] - reserved.get(tier, 0)) for tier in capacity}
