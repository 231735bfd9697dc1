"""Read Kubernetes Node objects (as JSON dicts) into the capacity model's NodeState.

Pure: the labels GPU Feature Discovery and the GPU Operator set, the node's allocatable
`nvidia.com/gpu`, cordoning and readiness become one NodeState per node, with the reason a
node cannot serve a tier when its labels, MIG state or strategy say so. Reading the nodes from
a cluster lives in provisioners.inventory; this module only interprets them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from leases import gpu_catalog
from leases.capacity import NodeState

TIER_LABEL = "gpulease.io/tier"
TARGET_TIER_ANNOTATION = "gpulease.io/target-tier"
# When the placer began draining the node for its target tier (RFC 3339, UTC).
DRAINING_SINCE_ANNOTATION = "gpulease.io/draining-since"
PRODUCT = "nvidia.com/gpu.product"
COUNT = "nvidia.com/gpu.count"
REPLICAS = "nvidia.com/gpu.replicas"
MIG_STRATEGY = "nvidia.com/mig.strategy"
MIG_CONFIG = "nvidia.com/mig.config"
MIG_CONFIG_STATE = "nvidia.com/mig.config.state"
GPU_RESOURCE = "nvidia.com/gpu"


@dataclass(frozen=True)
class NodeReading:
    """A node as read, with what the inventory found about it; `namespaces` hold its GPU pods."""

    state: NodeState
    product: str | None
    namespaces: frozenset[str] = frozenset()


def _int(value: Any) -> int | None:
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return None


def _timestamp(value: Any) -> float | None:
    """Return an RFC 3339 time as POSIX seconds (naive times are UTC), None if it is not one."""
    try:
        at = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return (at if at.tzinfo else at.replace(tzinfo=UTC)).timestamp()


def draining_since(at: datetime) -> str:
    """Return the `gpulease.io/draining-since` annotation value for a drain begun at `at`."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _ready(node: Mapping[str, Any]) -> bool:
    for condition in node.get("status", {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return condition.get("status") == "True"
    return False


def _physical_gpus(
    model: gpu_catalog.GpuModel, mig_profile: str | None, count: int, mig_config: str | None
) -> tuple[int, str | None]:
    """Derive physical GPUs from gpu.count, which counts MIG devices under the single strategy."""
    if mig_profile is None:
        return count, None
    layout = model.mig_configs.get(mig_config or "")
    per_gpu = sum(layout.values()) if layout else 0
    if not per_gpu:
        profile = model.profiles.get(mig_profile)
        if profile is None:
            return 0, f"{model.id} has no MIG profile {mig_profile}"
        per_gpu = profile.max_instances
    if count % per_gpu:
        return count // per_gpu, (
            f"gpu.count {count} is not a whole number of GPUs at {per_gpu} {mig_profile} per GPU"
        )
    return count // per_gpu, None


def read_node(node: Mapping[str, Any], *, gpu_pods: int = 0) -> NodeReading:
    """Interpret one Node object; problems become `healthy=False` with a reason."""
    meta = node.get("metadata", {})
    labels: Mapping[str, str] = meta.get("labels") or {}
    annotations: Mapping[str, str] = meta.get("annotations") or {}
    allocatable = _int((node.get("status", {}).get("allocatable") or {}).get(GPU_RESOURCE)) or 0
    common = dict(
        name=meta.get("name", "?"),
        tier=labels.get(TIER_LABEL),
        schedulable=not node.get("spec", {}).get("unschedulable", False),
        allocatable_gpu=allocatable,
        gpu_pods=gpu_pods,
        target_tier=annotations.get(TARGET_TIER_ANNOTATION),
        drain_started=_timestamp(annotations[DRAINING_SINCE_ANNOTATION])
        if annotations.get(TARGET_TIER_ANNOTATION) and annotations.get(DRAINING_SINCE_ANNOTATION)
        else None,
    )
    product = labels.get(PRODUCT)
    if product is None:
        reason = "no GPUs" if not allocatable else "nvidia.com/gpu allocatable but no gpu.product label"
        state = NodeState(gpu_model=None, gpus=0, healthy=not allocatable, reason=reason, **common)
        return NodeReading(state=state, product=None)

    parsed = gpu_catalog.parse_product(product)
    mig_config = labels.get(MIG_CONFIG)
    config_state = labels.get(MIG_CONFIG_STATE) if parsed.model and parsed.model.mig else None
    problems: list[str] = []
    gpus = 0
    if parsed.model is None:
        problems.append(f"unknown GPU product {product}")
    elif labels.get(MIG_STRATEGY) == "mixed":
        problems.append("mixed MIG strategy: gpulease needs the single strategy")
    else:
        count = _int(labels.get(COUNT))
        if count is None:
            problems.append("no nvidia.com/gpu.count label")
        else:
            gpus, problem = _physical_gpus(parsed.model, parsed.mig_profile, count, mig_config)
            if problem:
                problems.append(problem)
            replicas = _int(labels.get(REPLICAS)) or 1
            advertised = count * replicas
            if not problem and allocatable != advertised:
                problems.append(
                    f"labels say {advertised} nvidia.com/gpu (gpu.count {count} × replicas {replicas}) "
                    f"but allocatable is {allocatable}"
                )
    if config_state not in (None, "success"):
        problems.append(f"mig.config.state is {config_state}")
    if not _ready(node):
        problems.append("node is not Ready")
    state = NodeState(
        gpu_model=parsed.model.id if parsed.model else None,
        gpus=gpus,
        mig_config=mig_config,
        config_state=config_state,
        healthy=not problems,
        reason="; ".join(problems) or None,
        **common,
    )
    return NodeReading(state=state, product=product)


def pod_uses_gpu(pod: Mapping[str, Any]) -> bool:
    """Tell whether a pod holds GPUs on its node: it has not ended (Succeeded/Failed) and any of
    its containers, app or init, requests or limits `nvidia.com/gpu` > 0.

    Init containers count whatever they are: a sidecar (an init container with `restartPolicy:
    Always`) holds its device for the pod's whole life, and an ordinary init container holds
    one while it runs, which, read from the API, cannot be told apart safely from having
    finished (its status may lag, or the pod restarts and runs it again). The scheduler and
    the quota keep charging such a pod its init containers' GPUs until it ends, too. So a pod
    with a GPU anywhere in its spec keeps its node busy until it ends: at worst a node waits
    for a pod that no longer uses its GPU, never is a GPU rewritten under one that does.
    """
    if pod.get("status", {}).get("phase") in ("Succeeded", "Failed"):
        return False
    spec = pod.get("spec", {})
    for container in (spec.get("containers") or []) + (spec.get("initContainers") or []):
        resources = container.get("resources") or {}
        for section in ("requests", "limits"):
            if (_int((resources.get(section) or {}).get(GPU_RESOURCE)) or 0) > 0:
                return True
    return False


def gpu_pods_by_node(pods: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """Count running GPU pods per node name."""
    counts: dict[str, int] = {}
    for pod in pods:
        node = pod.get("spec", {}).get("nodeName")
        if node and pod_uses_gpu(pod):
            counts[node] = counts.get(node, 0) + 1
    return counts


def gpu_namespaces_by_node(pods: Iterable[Mapping[str, Any]]) -> dict[str, frozenset[str]]:
    """Return, per node name, the namespaces of the GPU pods running on it."""
    found: dict[str, set[str]] = {}
    for pod in pods:
        node = pod.get("spec", {}).get("nodeName")
        if node and pod_uses_gpu(pod):
            found.setdefault(node, set()).add(pod.get("metadata", {}).get("namespace", ""))
    return {node: frozenset(names) for node, names in found.items()}


def read_inventory(
    nodes: Iterable[Mapping[str, Any]], pods: Iterable[Mapping[str, Any]] = ()
) -> list[NodeReading]:
    """Interpret every node, with the GPU pods running on each."""
    pods = list(pods)
    busy = gpu_pods_by_node(pods)
    namespaces = gpu_namespaces_by_node(pods)
    readings = []
    for node in nodes:
        name = node.get("metadata", {}).get("name", "?")
        reading = read_node(node, gpu_pods=busy.get(name, 0))
        readings.append(replace(reading, namespaces=namespaces.get(name, frozenset())))
    return readings


def with_empty_times(readings: Iterable[NodeReading], expiries: Mapping[str, float]) -> list[NodeState]:
    """Return the nodes' states with `empties_at`: when the last lease with GPU pods there expires.

    `expiries` maps a lease's namespace to its expiry (POSIX seconds). A node with a GPU pod in
    any other namespace (not a lease, or one without an expiry) may never empty: None, unknown.
    A node without GPU pods keeps None too (it is empty already).
    """
    states = []
    for reading in readings:
        ends = [expiries.get(ns) for ns in reading.namespaces]
        known = bool(ends) and all(end is not None for end in ends)
        empties_at = max(end for end in ends if end is not None) if known else None
        states.append(replace(reading.state, empties_at=empties_at))
    return states


def with_moves_under_way(states: Iterable[NodeState], moving: Mapping[str, str]) -> list[NodeState]:
    """Return the nodes' states with each node that has an unfinished move (`moving` maps its
    name to the tier it moves to) shown as the mover will leave it: cordoned for that tier.

    A move is planned (and recorded) before the mover cordons its node, and the node still looks
    open in its old pool until then; counting it there would let a placement reserve units the
    move is about to take away. Shown cordoned with a target tier, it counts for neither pool and
    is on its way to the target (leases.moves.summarise). The mover takes the node's
    `gpulease.io/tier` label off while it works (no pod of the old tier may land on it): such a
    node is read in the target's tier, so it still counts on its way there, and is not taken
    for a blank node. Once the move is done, rolled back or abandoned, the node is read as it
    really is again.
    """
    return [
        replace(
            state, schedulable=False, target_tier=moving[state.name], tier=state.tier or moving[state.name]
        )
        if state.name in moving
        else state
        for state in states
    ]


def with_drains(readings: Iterable[NodeReading], targets: Mapping[str, str | None]) -> list[NodeReading]:
    """Return the readings with each node of `targets` shown as its drain leaves it: draining
    for the tier it maps to, or given back to its pool (None).

    A drain is decided before its task annotates the node; a caller that decides again on the
    same readings (a waitlist wake-up) must see it, or it counts the node in its old pool and
    its room as not on its way to the target.
    """
    return [
        replace(reading, state=replace(reading.state, target_tier=targets[reading.state.name]))
        if reading.state.name in targets
        else reading
        for reading in readings
    ]
