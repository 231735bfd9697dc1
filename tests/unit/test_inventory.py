"""Reading Node objects into the capacity model: models, physical GPUs, reasons."""

from __future__ import annotations

import pytest

from config.settings import EXAMPLE_POLICY
from gpulease.wiring import load_checked_policy
from leases.capacity import assess_node, pool_capacity, tier_specs
from leases.inventory import (
    gpu_pods_by_node,
    pod_uses_gpu,
    read_inventory,
    read_node,
    with_drains,
    with_empty_times,
    with_moves_under_way,
)
from leases.moves import summarise

TIERS = tier_specs(load_checked_policy(EXAMPLE_POLICY))


def node(name: str, labels: dict, gpu: int | None, *, ready=True, cordoned=False) -> dict:
    status = {
        "allocatable": {"cpu": "64", "memory": "512Gi"}
        | ({"nvidia.com/gpu": str(gpu)} if gpu is not None else {}),
        "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
    }
    return {
        "metadata": {"name": name, "labels": labels},
        "spec": {"unschedulable": cordoned},
        "status": status,
    }


def mig_single(name, *, gpus=8, profile="1g.10gb", per_gpu=7, config="all-1g.10gb", tier="h100-1g", **kw):
    labels = {
        "nvidia.com/gpu.product": f"NVIDIA-H100-80GB-HBM3-MIG-{profile}",
        "nvidia.com/gpu.count": str(gpus * per_gpu),
        "nvidia.com/gpu.replicas": "1",
        "nvidia.com/mig.strategy": "single",
        "nvidia.com/mig.capable": "true",
        "nvidia.com/mig.config": config,
        "nvidia.com/mig.config.state": kw.pop("state", "success"),
        "gpulease.io/tier": tier,
    }
    return node(name, labels, kw.pop("allocatable", gpus * per_gpu), **kw)


def test_single_strategy_counts_physical_gpus_not_mig_devices():
    reading = read_node(mig_single("n1"))
    assert reading.state.gpu_model == "H100-80GB"
    assert reading.state.gpus == 8 and reading.state.allocatable_gpu == 56
    assert reading.state.healthy and reading.state.reason is None
    assessed = assess_node(node=reading.state, tiers=TIERS)
    assert assessed.counted and assessed.units == 56


def test_3g_node_and_full_gpu_node():
    three = read_node(mig_single("n2", profile="3g.40gb", per_gpu=2, config="all-3g.40gb", tier="h100-3g"))
    assert three.state.gpus == 8 and assess_node(node=three.state, tiers=TIERS).units == 16
    full = node(
        "n3",
        {
            "nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3",
            "nvidia.com/gpu.count": "8",
            "nvidia.com/mig.capable": "true",
            "nvidia.com/mig.config": "all-disabled",
            "nvidia.com/mig.config.state": "success",
            "gpulease.io/tier": "h100-full",
        },
        8,
    )
    reading = read_node(full)
    assert reading.state.gpus == 8 and assess_node(node=reading.state, tiers=TIERS).units == 8


def test_time_sliced_node_counts_replicas():
    labels = {
        "nvidia.com/gpu.product": "NVIDIA-L40S-SHARED",
        "nvidia.com/gpu.count": "4",
        "nvidia.com/gpu.replicas": "4",
        "nvidia.com/gpu.sharing-strategy": "time-slicing",
        "nvidia.com/mig.capable": "false",
        "gpulease.io/tier": "l40s-shared",
    }
    reading = read_node(node("ts", labels, 16))
    assert reading.state.gpu_model == "L40S" and reading.state.gpus == 4
    assert reading.state.config_state is None
    assert assess_node(node=reading.state, tiers=TIERS).units == 16


@pytest.mark.parametrize(
    ("make", "needle"),
    [
        (lambda: mig_single("x", allocatable=50), "labels say 56 nvidia.com/gpu"),
        (lambda: mig_single("x", state="pending"), "mig.config.state is pending"),
        (lambda: mig_single("x", state="failed"), "mig.config.state is failed"),
        (lambda: mig_single("x", ready=False), "node is not Ready"),
    ],
)
def test_inconsistent_nodes_are_not_counted_with_reason(make, needle):
    reading = read_node(make())
    assert not reading.state.healthy and needle in reading.state.reason
    assessed = assess_node(node=reading.state, tiers=TIERS)
    assert not assessed.counted and needle in assessed.reason


def test_mixed_strategy_is_reported():
    labels = {
        "nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3",
        "nvidia.com/gpu.count": "8",
        "nvidia.com/mig.strategy": "mixed",
        "nvidia.com/mig-1g.10gb.count": "16",
        "nvidia.com/mig.config": "all-balanced",
        "nvidia.com/mig.config.state": "success",
    }
    reading = read_node(node("mixed", labels, 0))
    assert reading.state.reason == "mixed MIG strategy: gpulease needs the single strategy"


def test_unknown_product_and_cpu_node():
    unknown = read_node(node("u", {"nvidia.com/gpu.product": "NVIDIA-X1000", "nvidia.com/gpu.count": "2"}, 2))
    assert unknown.state.gpu_model is None and "unknown GPU product NVIDIA-X1000" in unknown.state.reason
    cpu = read_node(node("cpu", {}, None))
    assert cpu.state.gpus == 0 and cpu.state.gpu_model is None and cpu.state.reason == "no GPUs"


def test_gpu_pods_are_counted_per_node_and_cordon_read():
    pods = [
        {
            "spec": {"nodeName": "n1", "containers": [{"resources": {"limits": {"nvidia.com/gpu": "1"}}}]},
            "status": {"phase": "Running"},
        },
        {"spec": {"nodeName": "n1", "containers": [{"resources": {}}]}, "status": {"phase": "Running"}},
        {
            "spec": {"nodeName": "n1", "containers": [{"resources": {"requests": {"nvidia.com/gpu": 2}}}]},
            "status": {"phase": "Succeeded"},
        },
        {
            "spec": {"nodeName": "n2", "containers": [{"resources": {"requests": {"nvidia.com/gpu": "2"}}}]},
            "status": {"phase": "Running"},
        },
    ]
    assert gpu_pods_by_node(pods) == {"n1": 1, "n2": 1}
    readings = read_inventory([mig_single("n1", cordoned=True), mig_single("n2")], pods)
    assert [r.state.gpu_pods for r in readings] == [1, 1]
    assert readings[0].state.schedulable is False
    assert pool_capacity(inventory=[r.state for r in readings], tiers=TIERS)["h100-1g"] == 56


@pytest.mark.parametrize("restart", [None, "Always"], ids=["init-container", "sidecar"])
def test_a_gpu_held_by_an_init_container_or_a_sidecar_counts_until_the_pod_ends(restart):
    init = {"name": "i", "resources": {"limits": {"nvidia.com/gpu": "1"}}}
    if restart:
        init["restartPolicy"] = restart
    pod = {
        "spec": {"nodeName": "n1", "initContainers": [init], "containers": [{"name": "c", "resources": {}}]},
        "status": {"phase": "Running"},
    }
    assert pod_uses_gpu(pod)
    assert pod_uses_gpu(pod | {"status": {"phase": "Pending"}})
    assert not pod_uses_gpu(pod | {"status": {"phase": "Succeeded"}})
    assert not pod_uses_gpu(pod | {"spec": {"nodeName": "n1", "initContainers": [{"name": "i"}], "containers": []}})
    assert gpu_pods_by_node([pod]) == {"n1": 1}


def _gpu_pod(node: str, namespace: str) -> dict:
    return {
        "metadata": {"namespace": namespace},
        "spec": {"nodeName": node, "containers": [{"resources": {"limits": {"nvidia.com/gpu": "1"}}}]},
        "status": {"phase": "Running"},
    }


def test_a_node_empties_when_its_last_lease_expires():
    pods = [
        _gpu_pod("n1", "a"),
        _gpu_pod("n1", "b"),
        _gpu_pod("n2", "a"),
        _gpu_pod("n3", "a"),
        _gpu_pod("n3", "kube-x"),
    ]
    readings = read_inventory([mig_single(n) for n in ("n1", "n2", "n3", "n4")], pods)
    assert [sorted(r.namespaces) for r in readings] == [["a", "b"], ["a"], ["a", "kube-x"], []]
    states = with_empty_times(readings, {"a": 100.0, "b": 250.0})
    # n3 runs a GPU pod of no lease (it may never leave); n4 is empty already.
    assert [s.empties_at for s in states] == [250.0, 100.0, None, None]
    assert [s.gpu_pods for s in states] == [2, 1, 2, 0]


def test_a_node_with_a_move_under_way_counts_for_no_pool_but_is_on_its_way():
    tiers = tier_specs(load_checked_policy(EXAMPLE_POLICY))
    states = [r.state for r in read_inventory([mig_single("n1"), mig_single("n2")], [])]
    assert pool_capacity(inventory=states, tiers=tiers)["h100-1g"] == 112
    # n1 is planned to move to whole GPUs but not cordoned yet: it already counts for neither.
    moving = with_moves_under_way(states, {"n1": "h100-full", "gone": "h100-full"})
    assert [(s.name, s.schedulable, s.target_tier) for s in moving] == [
        ("n1", False, "h100-full"),
        ("n2", True, None),
    ]
    assert pool_capacity(inventory=moving, tiers=tiers)["h100-1g"] == 56
    pools = summarise(inventory=moving, reservations={}, tiers=tiers)
    assert pools.capacity["h100-1g"] == 56 and pools.incoming["h100-full"] == 8
    assert [c.node.name for c in pools.idle.get("H100-80GB", [])] == ["n2"]  # n1 cannot move twice


def test_a_moving_node_without_its_tier_label_still_counts_on_its_way_to_the_target():
    # The mover takes the tier label off the node it cordons: it is read in the target tier,
    # on its way there, and never taken for a blank node that could move again.
    tiers = tier_specs(load_checked_policy(EXAMPLE_POLICY))
    raw = mig_single("n1", cordoned=True)
    del raw["metadata"]["labels"]["gpulease.io/tier"]
    raw["metadata"]["annotations"] = {"gpulease.io/target-tier": "h100-full"}
    states = [r.state for r in read_inventory([raw, mig_single("n2")], [])]
    assert states[0].tier is None
    moving = with_moves_under_way(states, {"n1": "h100-full"})
    assert (moving[0].tier, moving[0].schedulable, moving[0].target_tier) == ("h100-full", False, "h100-full")
    assert moving[1] == states[1]
    pools = summarise(inventory=moving, reservations={}, tiers=tiers)
    assert pools.capacity["h100-1g"] == 56 and pools.incoming["h100-full"] == 8
    assert [c.node.name for c in pools.idle.get("H100-80GB", [])] == ["n2"]
    assert pool_capacity(inventory=moving, tiers=tiers)["h100-full"] == 0


def test_a_drain_just_decided_shows_before_the_node_is_annotated():
    tiers = tier_specs(load_checked_policy(EXAMPLE_POLICY))
    readings = read_inventory([mig_single("n1"), mig_single("n2")], [_gpu_pod("n1", "a"), _gpu_pod("n2", "b")])
    drained = with_drains(readings, {"n1": "h100-full", "gone": "h100-full"})
    assert [(r.state.name, r.state.target_tier, sorted(r.namespaces)) for r in drained] == [
        ("n1", "h100-full", ["a"]),
        ("n2", None, ["b"]),
    ]
    # The draining node keeps its pods but leaves its pool, and its GPUs are on their way.
    pools = summarise(inventory=[r.state for r in drained], reservations={}, tiers=tiers)
    assert pools.capacity["h100-1g"] == 56 and pools.incoming["h100-full"] == 8
    assert [n.name for n in pools.busy["H100-80GB"]] == ["n2"]
    # Given back (None), it counts in its pool again.
    back = with_drains(drained, {"n1": None})
    assert [r.state for r in back] == [r.state for r in readings]


def test_a_drain_reads_when_it_began_from_its_annotation():
    def drained(**annotations):
        raw = mig_single("n1")
        raw["metadata"]["annotations"] = annotations
        return read_node(raw).state

    started = drained(**{"gpulease.io/target-tier": "h100-full", "gpulease.io/draining-since": "2026-03-02T09:00:00Z"})
    assert (started.target_tier, started.drain_started) == ("h100-full", 1772442000.0)
    assert drained(**{"gpulease.io/target-tier": "h100-full"}).drain_started is None
    # A time that is not one, or a start left behind without a drain, counts as no start.
    assert drained(**{"gpulease.io/target-tier": "h100-full", "gpulease.io/draining-since": "soon"}).drain_started is None
    assert drained(**{"gpulease.io/draining-since": "2026-03-02T09:00:00Z"}).drain_started is None
