"""Elastic pools for real: a node moves between tiers through the sandbox's GPU Operator, and a
failed or timed-out reconfiguration rolls back."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from kubernetes.client import CoreV1Api
from sqlmodel import select

from config.policy import Tier
from leases.models import AuditEvent, NodeMoveRecord
from leases.reservations import pool_usage
from leases.states import LeaseState
from leases.store import session_scope
from sandbox.kube import KubeSandbox
from tests.integration.sandbox.waiting import wait_until
from tests.integration.workflows.conftest import gpu_pod, roomy_policy
from tests.integration.workflows.test_pipeline import request, state_of
from workflows import api, sweeps
from workflows.steps import moving
from workflows.steps.placing import moves_in_flight

# Idle donors of the same GPU model: the placer picks the one whose pool keeps the most slack.
DONORS = ("gpu-h100-1g-0", "gpu-h100-1g-1", "gpu-h100-3g-0")


@pytest.fixture
def kube() -> Iterator[KubeSandbox]:
    """The default sandbox cluster (real GFD labels and the GPU Operator simulation)."""
    with KubeSandbox(port=0, namespace_delay=0.0, operator_delay=0.0) as sandbox:
        yield sandbox


def _whole_gpus(rt, name: str):
    s = api.submit(request(tier="h100-full", units=8, namespace=name, duration=timedelta(days=1)))
    api.decide(lease_id=s.lease_id, approver="U0APPROVER2", approve=True)
    return s.lease_id


def _moves(rt) -> list[NodeMoveRecord]:
    with session_scope(rt.engine) as session:
        return list(session.exec(select(NodeMoveRecord).order_by(NodeMoveRecord.id)).all())


def _policy():
    data_policy = roomy_policy()
    return data_policy.model_copy(update={"tiers": [t.model_copy(update={"max_units": 8}) for t in data_policy.tiers]})


def test_a_short_tier_gets_an_idle_node_through_the_gpu_operator(make_runtime, kube):
    rt = make_runtime(policy=_policy(), nodes=())
    first = _whole_gpus(rt, "train-a")
    rt.queue.drain()
    assert state_of(rt, first) is LeaseState.ACTIVE
    second = _whole_gpus(rt, "train-b")  # the full pool is used up: an idle node must move
    rt.queue.drain()
    assert state_of(rt, second) is LeaseState.ACTIVE
    [move] = _moves(rt)
    assert (move.node, move.from_tier, move.to_tier, move.step) == ("gpu-h100-1g-0", "h100-1g", "h100-full", "done")
    node = kube.get("nodes", move.node)
    labels = node["metadata"]["labels"]
    assert labels["gpulease.io/tier"] == "h100-full"
    assert labels["nvidia.com/mig.config"] == "all-disabled"
    assert labels["nvidia.com/mig.config.state"] == "success"
    assert node["status"]["allocatable"]["nvidia.com/gpu"] == "8"
    assert not node["spec"].get("unschedulable")
    assert "gpulease.io/target-tier" not in (node["metadata"].get("annotations") or {})
    with session_scope(rt.engine) as session:
        steps = session.exec(
            select(AuditEvent.action).where(AuditEvent.action.like("node_move.%")).order_by(AuditEvent.id)
        ).all()
    assert steps == ["node_move.cordoned", "node_move.reconfiguring", "node_move.done"]


def _after_a_failed_move(rt, kube) -> str:
    """Fill the whole-GPU pool, make every donor's reconfiguration fail, and ask for another
    node's worth: return that lease, waiting (after its move rolled back, or with the move held
    when the queue does not run moves)."""
    _whole_gpus(rt, "train-a")
    rt.queue.drain()
    for donor in DONORS:
        kube.set_faulty(donor, True)
    waiting = _whole_gpus(rt, "train-b")
    rt.queue.drain()
    return waiting


def test_a_failed_reconfiguration_rolls_back_once_the_old_configuration_is_back(make_runtime, kube):
    rt = make_runtime(policy=_policy(), nodes=())
    rt.queue.run_moves = False
    waiting = _after_a_failed_move(rt, kube)
    [move_id] = rt.queue.held_moves
    [move] = _moves(rt)
    assert [moving.advance_move(rt, move_id).step for _ in range(2)] == ["cordoned", "reconfiguring"]
    wait_until(lambda: kube.get("nodes", move.node)["metadata"]["labels"]["nvidia.com/mig.config.state"] == "failed")
    kube.set_faulty(move.node, False)  # the old configuration can come back
    assert moving.advance_move(rt, move_id).step == "rolling_back"
    node = kube.get("nodes", move.node)
    assert node["spec"]["unschedulable"], "no pod may land while the GPUs are rewritten"
    assert node["metadata"]["labels"]["nvidia.com/mig.config"] == "all-1g.10gb"
    assert moving.advance_move(rt, move_id).step == "rolled_back"
    [move] = _moves(rt)
    assert "failed" in move.reason and "cordoned" not in move.reason
    node = kube.get("nodes", move.node)
    assert node["metadata"]["labels"]["gpulease.io/tier"] == "h100-1g"
    assert not node["spec"].get("unschedulable")
    rt.queue.drain()
    assert state_of(rt, waiting) is LeaseState.WAITLISTED
    assert "admin.node_move_rolled_back" in rt.notifier.kinds("admins")


def test_a_node_whose_old_configuration_does_not_come_back_stays_cordoned(make_runtime, kube):
    rt = make_runtime(policy=_policy(), nodes=())
    waiting = _after_a_failed_move(rt, kube)  # the node stays faulty: the revert fails too
    [move] = _moves(rt)
    assert move.step == "rolled_back"
    assert "the node stays cordoned: its old configuration did not come back (it failed too" in move.reason
    node = kube.get("nodes", move.node)
    assert node["spec"]["unschedulable"]
    assert node["metadata"]["labels"]["gpulease.io/tier"] == "h100-1g"
    assert node["metadata"]["labels"]["nvidia.com/mig.config"] == "all-1g.10gb"
    assert state_of(rt, waiting) is LeaseState.WAITLISTED
    [notice] = [s.notice for s in rt.notifier.sent if s.notice.kind == "admin.node_move_rolled_back"]
    assert "uncordon it once fixed" in notice.text


def test_a_reconfiguration_past_the_timeout_rolls_back(make_runtime, kube, clock):
    rt = make_runtime(policy=_policy(), nodes=())
    _whole_gpus(rt, "train-a")
    rt.queue.drain()
    for donor in DONORS:
        kube.set_hang(donor, True)
    rt.queue.run_moves = False
    waiting = _whole_gpus(rt, "train-b")
    rt.queue.drain()
    [move_id] = rt.queue.held_moves
    steps = [moving.advance_move(rt, move_id).step for _ in range(4)]
    assert steps == ["cordoned", "reconfiguring", "reconfiguring", "reconfiguring"]  # pending, hung
    clock.advance(rt.move_timeout + timedelta(seconds=1))
    # The old configuration is asked back; it is the one applied, so it is back at once.
    assert [moving.advance_move(rt, move_id).step for _ in range(2)] == ["rolling_back", "rolled_back"]
    assert "no success within" in _moves(rt)[0].reason
    node = kube.get("nodes", _moves(rt)[0].node)
    labels = node["metadata"]["labels"]
    assert labels["nvidia.com/mig.config"] == "all-1g.10gb" and labels["gpulease.io/tier"] == "h100-1g"
    assert not node["spec"].get("unschedulable")
    rt.queue.drain()
    assert state_of(rt, waiting) is LeaseState.WAITLISTED


def test_a_node_with_gpu_pods_is_never_moved(make_runtime, kube):
    rt = make_runtime(policy=_policy(), nodes=())
    _whole_gpus(rt, "train-a")
    rt.queue.drain()
    # A GPU pod on every donor node: no move may touch them.
    for node in DONORS:
        kube.create("pods", {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"busy-{node}", "namespace": "default"},
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "cuda",
                                                      "resources": {"limits": {"nvidia.com/gpu": "1"}}}]},
        })
    waiting = _whole_gpus(rt, "train-b")
    rt.queue.drain()
    assert state_of(rt, waiting) is LeaseState.WAITLISTED
    assert all(m.step != "done" for m in _moves(rt))
    for node in DONORS:
        assert kube.get("nodes", node)["metadata"]["labels"]["nvidia.com/mig.config"] != "all-disabled"


def test_a_node_planned_to_move_counts_for_no_pool_until_its_move_ends(make_runtime, kube):
    rt = make_runtime(policy=_policy(), nodes=())
    _whole_gpus(rt, "train-a")
    rt.queue.drain()
    rt.queue.run_moves = False
    moved_for = _whole_gpus(rt, "train-b")
    rt.queue.drain()
    [move_id] = rt.queue.held_moves
    [move] = _moves(rt)
    assert (move.from_tier, move.step) == ("h100-1g", "planned")
    # Before the move has even cordoned its node, the donor pool is asked for more than its
    # other node holds (56 units), 8 units at a time: only what fits without the node is placed.
    small = []
    for i in range(8):
        submitted = api.submit(request(tier="h100-1g", units=8, namespace=f"nb-{i}", duration=timedelta(hours=2)))
        if submitted.approval != "auto":
            api.decide(lease_id=submitted.lease_id, approver="U0APPROVER1", approve=True)
        small.append(submitted.lease_id)
        rt.queue.drain()
    states = [state_of(rt, lease) for lease in small]
    assert states.count(LeaseState.ACTIVE) == 7 and states[-1] is LeaseState.WAITLISTED
    while moving.advance_move(rt, move_id).again:
        pass
    assert _moves(rt)[0].step == "done"
    rt.queue.drain()
    assert state_of(rt, moved_for) is LeaseState.ACTIVE
    sweeps.sync_capacity(rt, "sandbox")  # the pools as the nodes are now
    with session_scope(rt.engine) as session:
        for pool in pool_usage(session):
            assert pool.reserved <= pool.capacity, pool


def test_a_move_whose_task_was_lost_is_resumed_by_the_sweep(make_runtime, kube, clock):
    rt = make_runtime(policy=_policy(), nodes=())
    rt.queue.run_moves = False
    _whole_gpus(rt, "train-a")
    second = _whole_gpus(rt, "train-b")  # needs an idle node moved
    rt.queue.drain()
    [move_id] = rt.queue.held_moves
    rt.queue.held_moves.clear()  # the worker died with the message
    assert sweeps.sweep(rt).resumed_moves == []  # not overdue yet
    clock.advance(rt.stuck_after + timedelta(seconds=1))
    assert sweeps.sweep(rt).resumed_moves == [move_id]
    rt.queue.run_moves = True
    rt.queue.drain()
    [move] = _moves(rt)
    assert move.step == "done" and state_of(rt, second) is LeaseState.ACTIVE
    assert sweeps.sweep(rt).resumed_moves == []


def test_a_lost_move_that_was_reconfiguring_is_resumed_only_after_the_move_timeout(make_runtime, kube, clock):
    rt = make_runtime(policy=_policy(), nodes=())
    rt.queue.run_moves = False
    _whole_gpus(rt, "train-a")
    second = _whole_gpus(rt, "train-b")
    rt.queue.drain()
    [move_id] = rt.queue.held_moves
    rt.queue.held_moves.clear()
    while moving.advance_move(rt, move_id).step != "reconfiguring":
        pass  # lost while the GPU Operator works
    clock.advance(rt.stuck_after + timedelta(seconds=1))
    assert sweeps.sweep(rt).resumed_moves == []  # the operator may still be at it
    clock.advance(rt.move_timeout)
    assert sweeps.sweep(rt).resumed_moves == [move_id]
    rt.queue.run_moves = True
    rt.queue.drain()
    # The operator had finished meanwhile: the resumed step sees it and completes the move.
    [move] = _moves(rt)
    assert move.step == "done" and state_of(rt, second) is LeaseState.ACTIVE


def test_after_a_failed_reconfiguration_no_node_moves_to_its_tier_for_a_while(make_runtime, kube, clock):
    rt = make_runtime(policy=_policy(), nodes=())
    waiting = _after_a_failed_move(rt, kube)
    for _ in range(3):  # wake-ups find the same shortage: no other node is tried meanwhile
        sweeps.wake_waitlist(rt, "sandbox")
        rt.queue.drain()
    assert [m.step for m in _moves(rt)] == ["rolled_back"]
    assert rt.notifier.kinds("admins").count("admin.node_move_rolled_back") == 1
    [notice] = [s.notice for s in rt.notifier.sent if s.notice.kind == "admin.node_move_rolled_back"]
    assert "no node moves to h100-full on sandbox for 1h" in notice.text
    # The pause over (and the GPU Operator fixed), the next wake-up moves a node.
    for donor in DONORS:
        kube.set_faulty(donor, False)
    clock.advance(rt.policy.placement.failed_move_pause + timedelta(seconds=1))
    sweeps.wake_waitlist(rt, "sandbox")
    rt.queue.drain()
    assert [m.step for m in _moves(rt)] == ["rolled_back", "done"]
    assert state_of(rt, waiting) is LeaseState.ACTIVE


def _planned_move(rt) -> int:
    """Plan a move of an idle 1g node to whole GPUs, held before its first step; return it."""
    rt.queue.run_moves = False
    _whole_gpus(rt, "train-a")
    _whole_gpus(rt, "train-b")
    rt.queue.drain()
    [move_id] = rt.queue.held_moves
    return move_id


def test_a_cordon_cut_short_before_it_was_recorded_is_lifted_by_a_rollback(make_runtime, kube, clock):
    rt = make_runtime(policy=_policy(), nodes=())
    move_id = _planned_move(rt)
    [move] = _moves(rt)
    # The worker cordoned the node and died before recording it: the step runs again.
    CoreV1Api(rt.kube("sandbox")).patch_node(
        move.node, {"metadata": {"annotations": {"gpulease.io/target-tier": "h100-full"}}, "spec": {"unschedulable": True}}
    )
    kube.set_hang(move.node, True)  # the reconfiguration never ends: the move times out
    assert [moving.advance_move(rt, move_id).step for _ in range(2)] == ["cordoned", "reconfiguring"]
    clock.advance(rt.move_timeout + timedelta(seconds=1))
    assert [moving.advance_move(rt, move_id).step for _ in range(2)] == ["rolling_back", "rolled_back"]
    [move] = _moves(rt)
    assert move.step == "rolled_back" and move.previous["unschedulable"] is False
    node = kube.get("nodes", move.node)
    assert not node["spec"].get("unschedulable")
    assert "gpulease.io/target-tier" not in (node["metadata"].get("annotations") or {})


def test_a_node_an_admin_cordoned_after_the_plan_is_left_alone(make_runtime, kube):
    rt = make_runtime(policy=_policy(), nodes=())
    move_id = _planned_move(rt)
    [move] = _moves(rt)
    CoreV1Api(rt.kube("sandbox")).patch_node(move.node, {"spec": {"unschedulable": True}})
    assert moving.advance_move(rt, move_id).step == "abandoned"
    [move] = _moves(rt)
    assert "cordoned by someone else" in move.reason
    node = kube.get("nodes", move.node)
    assert node["spec"]["unschedulable"] and node["metadata"]["labels"]["gpulease.io/tier"] == "h100-1g"


def _recorded_move(rt, node: str, from_tier: str, to_tier: str) -> int:
    """Record a planned move of `node`, as placement would; return its id."""
    with session_scope(rt.engine) as session:
        record = NodeMoveRecord(
            cluster="sandbox",
            node=node,
            from_tier=from_tier,
            to_tier=to_tier,
            node_config=rt.tiers[to_tier].node_config,
            started_at=rt.now(),
            updated_at=rt.now(),
        )
        session.add(record)
        session.flush()
        return record.id


def test_a_move_is_done_only_once_the_node_shows_the_new_devices(make_runtime, kube):
    # Whole GPUs and 7g.80gb slices both give one unit per GPU: a state of success and an
    # allocatable left from before the change look like the move is done.
    seven = Tier(name="h100-7g", display="7g.80gb", gpu_model="H100-80GB", mode="mig", mig_profile="7g.80gb")
    policy = _policy()
    rt = make_runtime(policy=policy.model_copy(update={"tiers": [*policy.tiers, seven]}), nodes=())
    node = "gpu-h100-full-0"
    move_id = _recorded_move(rt, node, "h100-full", "h100-7g")
    kube.set_lagging(node, True)  # the MIG manager has not seen the new label yet
    steps = [moving.advance_move(rt, move_id).step for _ in range(4)]
    assert steps == ["cordoned", "reconfiguring", "reconfiguring", "reconfiguring"]
    assert kube.get("nodes", node)["spec"]["unschedulable"]
    kube.set_lagging(node, False)
    for _ in range(10_000):  # the operator catches up on its own thread: poll, bounded
        if not moving.advance_move(rt, move_id).again:
            break
    else:
        raise AssertionError("the move did not finish once the operator caught up")
    labels = kube.get("nodes", node)["metadata"]["labels"]
    assert (labels["gpulease.io/tier"], labels["nvidia.com/gpu.product"]) == ("h100-7g", "NVIDIA-H100-80GB-HBM3-MIG-7g.80gb")


def test_a_rollback_asks_for_the_old_tiers_configuration_when_the_node_had_no_mig_config_label(
    make_runtime, kube, clock
):
    rt = make_runtime(policy=_policy(), nodes=())
    node = "gpu-h100-full-0"  # MIG off by the operator's default: no mig.config label on it
    CoreV1Api(rt.kube("sandbox")).patch_node(node, {"metadata": {"labels": {"nvidia.com/mig.config": None}}})
    move_id = _recorded_move(rt, node, "h100-full", "h100-1g")
    kube.set_hang(node, True)
    assert [moving.advance_move(rt, move_id).step for _ in range(2)] == ["cordoned", "reconfiguring"]
    clock.advance(rt.move_timeout + timedelta(seconds=1))
    assert [moving.advance_move(rt, move_id).step for _ in range(2)] == ["rolling_back", "rolled_back"]
    labels = kube.get("nodes", node)["metadata"]["labels"]
    assert labels["nvidia.com/mig.config"] == "all-disabled" and labels["gpulease.io/tier"] == "h100-full"


def _pinned_namespace(kube, name: str, tier: str) -> None:
    """A lease's namespace, its pods pinned to `tier` by the node-selector annotation."""
    kube.create(
        "namespaces",
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {
                "name": name,
                "labels": {"gpulease.io/tier": tier},
                "annotations": {"scheduler.alpha.kubernetes.io/node-selector": f"gpulease.io/tier={tier}"},
            },
        },
    )


def _finish_move(rt, move_id: int) -> str:
    for _ in range(10_000):  # the operator works on its own thread: poll, bounded
        progress = moving.advance_move(rt, move_id)
        if not progress.again:
            return progress.step
    raise AssertionError("the move did not finish")


def test_a_moving_node_leaves_its_tier_so_no_pod_of_the_old_tier_lands_on_it(make_runtime, kube):
    rt = make_runtime(policy=_policy(), nodes=())
    node = "gpu-h100-1g-0"
    _pinned_namespace(kube, "lease-1g", "h100-1g")
    move_id = _recorded_move(rt, node, "h100-1g", "h100-3g")
    assert moving.advance_move(rt, move_id).step == "cordoned"
    cordoned = kube.get("nodes", node)
    assert cordoned["spec"]["unschedulable"] and "gpulease.io/tier" not in cordoned["metadata"]["labels"]
    assert _moves(rt)[0].previous["labels"]["gpulease.io/tier"] == "h100-1g"  # kept for a rollback
    assert moving.advance_move(rt, move_id).step == "reconfiguring"
    wait_until(lambda: kube.get("nodes", node)["metadata"]["labels"]["nvidia.com/gpu.product"].endswith("3g.40gb"))
    # A pod of the old tier that tolerates every taint, the cordon's too, and one naming the node.
    wild = gpu_pod(kube, "wild", None, "lease-1g", tolerations=[{"operator": "Exists"}])
    assert wild["spec"]["nodeName"] == "gpu-h100-1g-1"  # its own tier's node, not the moving one
    direct = gpu_pod(kube, "direct", node, "lease-1g")
    assert (direct["status"]["phase"], direct["status"]["reason"]) == ("Failed", "NodeAffinity")  # the kubelet's
    assert _finish_move(rt, move_id) == "done"
    done = kube.get("nodes", node)
    assert done["metadata"]["labels"]["gpulease.io/tier"] == "h100-3g" and not done["spec"].get("unschedulable")


def _stray_pod_on_a_reconfigured_node(make_runtime, kube):
    """Move gpu-h100-1g-0 to h100-3g up to its new devices, then have a pod outside any lease
    name the node and get one of them; return the runtime, the node and the move."""
    rt = make_runtime(policy=_policy(), nodes=())
    node = "gpu-h100-1g-0"
    move_id = _recorded_move(rt, node, "h100-1g", "h100-3g")
    assert [moving.advance_move(rt, move_id).step for _ in range(2)] == ["cordoned", "reconfiguring"]
    wait_until(lambda: kube.get("nodes", node)["metadata"]["labels"]["nvidia.com/gpu.product"].endswith("3g.40gb"))
    gpu_pod(kube, "stray", node)
    assert kube.get("pods", "stray", namespace="default")["status"]["phase"] == "Running"
    return rt, node, move_id


def test_a_gpu_pod_that_came_onto_the_node_during_the_move_is_waited_out(make_runtime, kube, clock):
    rt, node, move_id = _stray_pod_on_a_reconfigured_node(make_runtime, kube)
    # Giving the node to h100-3g now would leave that pod holding one of its devices, and
    # putting the old configuration back would destroy the device under it: the move waits.
    for _ in range(3):
        assert moving.advance_move(rt, move_id) == moving.MoveProgress("reconfiguring", again=True)
    waiting = kube.get("nodes", node)
    assert waiting["spec"]["unschedulable"] and "gpulease.io/tier" not in waiting["metadata"]["labels"]
    assert waiting["metadata"]["labels"]["nvidia.com/mig.config"] == "all-3g.40gb"
    kube.set_pod_phase("default", "stray", "Succeeded")  # the pod ends
    assert moving.advance_move(rt, move_id).step == "done"
    done = kube.get("nodes", node)
    assert done["metadata"]["labels"]["gpulease.io/tier"] == "h100-3g" and not done["spec"].get("unschedulable")


def test_a_gpu_pod_still_on_the_moving_node_at_the_timeout_leaves_it_to_an_admin(make_runtime, kube, clock):
    rt, node, move_id = _stray_pod_on_a_reconfigured_node(make_runtime, kube)
    assert moving.advance_move(rt, move_id).again
    clock.advance(rt.move_timeout + timedelta(seconds=1))
    assert moving.advance_move(rt, move_id).step == "abandoned"
    [move] = _moves(rt)
    assert "GPU pods came onto the node while it moved (default/stray)" in move.reason
    left = kube.get("nodes", node)
    assert left["spec"]["unschedulable"] and "gpulease.io/tier" not in left["metadata"]["labels"]
    assert left["metadata"]["labels"]["nvidia.com/mig.config"] == "all-3g.40gb"  # not rewritten under it
    assert kube.get("pods", "stray", namespace="default")["status"]["phase"] == "Running"
    rt.queue.drain()
    [notice] = [s.notice for s in rt.notifier.sent if s.notice.kind == "admin.node_move_abandoned"]
    assert "default/stray" in notice.text and "gpulease.io/tier=h100-3g" in notice.text


SIDECAR = {"name": "srv", "image": "cuda", "restartPolicy": "Always", "resources": {"limits": {"nvidia.com/gpu": "1"}}}
INIT = {"name": "warmup", "image": "cuda", "resources": {"limits": {"nvidia.com/gpu": "1"}}}


@pytest.mark.parametrize("init", [SIDECAR, INIT], ids=["sidecar", "init-container"])
def test_a_node_whose_gpu_is_held_by_an_init_container_or_a_sidecar_is_not_moved(make_runtime, kube, init):
    rt = make_runtime(policy=_policy(), nodes=())
    node = "gpu-h100-1g-0"
    app = [{"name": "c", "image": "envoy"}]  # the app container holds no GPU itself
    assert gpu_pod(kube, "served", node, initContainers=[init], containers=app)["status"][
        "phase"
    ] == "Running"
    move_id = _recorded_move(rt, node, "h100-1g", "h100-3g")
    assert moving.advance_move(rt, move_id).step == "abandoned"
    assert "GPU pods are running on the node" in _moves(rt)[0].reason
    untouched = kube.get("nodes", node)
    labels = untouched["metadata"]["labels"]
    assert (labels["gpulease.io/tier"], labels["nvidia.com/mig.config"]) == ("h100-1g", "all-1g.10gb")
    assert not untouched["spec"].get("unschedulable")
    assert kube.get("pods", "served", namespace="default")["status"]["phase"] == "Running"


def test_a_sidecar_gpu_pod_that_came_after_the_cordon_stops_the_move_before_the_reconfiguration(make_runtime, kube):
    rt = make_runtime(policy=_policy(), nodes=())
    node = "gpu-h100-1g-0"
    move_id = _recorded_move(rt, node, "h100-1g", "h100-3g")
    assert moving.advance_move(rt, move_id).step == "cordoned"
    gpu_pod(kube, "served", node, initContainers=[SIDECAR], containers=[{"name": "c", "image": "envoy"}])
    assert moving.advance_move(rt, move_id).step == "abandoned"
    given_back = kube.get("nodes", node)
    labels = given_back["metadata"]["labels"]
    assert (labels["gpulease.io/tier"], labels["nvidia.com/mig.config"]) == ("h100-1g", "all-1g.10gb")
    assert not given_back["spec"].get("unschedulable")
    assert kube.get("pods", "served", namespace="default")["status"]["phase"] == "Running"


def test_a_cordon_cut_short_after_the_tier_label_went_keeps_the_saved_tier(make_runtime, kube, clock):
    rt = make_runtime(policy=_policy(), nodes=())
    move_id = _planned_move(rt)
    assert moving.advance_move(rt, move_id).step == "cordoned"
    with session_scope(rt.engine) as session:  # the worker died before recording the step
        session.get(NodeMoveRecord, move_id).step = "planned"
    [move] = _moves(rt)
    assert "gpulease.io/tier" not in kube.get("nodes", move.node)["metadata"]["labels"]
    kube.set_hang(move.node, True)
    assert [moving.advance_move(rt, move_id).step for _ in range(2)] == ["cordoned", "reconfiguring"]
    assert _moves(rt)[0].previous["labels"]["gpulease.io/tier"] == "h100-1g"
    clock.advance(rt.move_timeout + timedelta(seconds=1))
    assert [moving.advance_move(rt, move_id).step for _ in range(2)] == ["rolling_back", "rolled_back"]
    node = kube.get("nodes", move.node)
    assert node["metadata"]["labels"]["gpulease.io/tier"] == "h100-1g" and not node["spec"].get("unschedulable")


@pytest.mark.parametrize("deleted_at", ["planned", "reconfiguring", "rolling_back"])
def test_a_move_of_a_node_deleted_meanwhile_is_abandoned_and_frees_the_waitlist(make_runtime, kube, clock, deleted_at):
    rt = make_runtime(policy=_policy(), nodes=())
    rt.queue.run_moves = False
    _whole_gpus(rt, "train-a")
    waiting = _whole_gpus(rt, "train-b")
    rt.queue.drain()
    [move_id] = rt.queue.held_moves  # train-b waits for this move
    [move] = _moves(rt)
    if deleted_at == "rolling_back":
        kube.set_faulty(move.node, True)
    while _moves(rt)[0].step != deleted_at:
        moving.advance_move(rt, move_id)
        if deleted_at == "rolling_back" and _moves(rt)[0].step == "reconfiguring":
            wait_until(lambda: kube.get("nodes", move.node)["metadata"]["labels"]["nvidia.com/mig.config.state"] == "failed")
    CoreV1Api(rt.kube("sandbox")).delete_node(move.node)  # scaled down, replaced
    progress = moving.advance_move(rt, move_id)
    assert (progress.step, progress.again) == ("abandoned", False)
    [move] = _moves(rt)
    assert move.finished_at is not None and move.reason == f"node {move.node} no longer exists"
    with session_scope(rt.engine) as session:
        assert moves_in_flight(session, "sandbox") == 0
    clock.advance(rt.stuck_after + rt.move_timeout + timedelta(seconds=1))
    assert sweeps.sweep(rt).resumed_moves == []  # nothing left to resume
    rt.queue.run_moves = True
    rt.queue.drain()  # the abandoned move woke the waitlist: another node moves for train-b
    assert "admin.node_move_abandoned" in rt.notifier.kinds("admins")
    moves = _moves(rt)
    assert [m.step for m in moves] == ["abandoned", "done"] and moves[1].node != move.node
    assert state_of(rt, waiting) is LeaseState.ACTIVE
