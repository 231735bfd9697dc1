"""Demand-priced elastic pools in the workflows: prices learned from the store, idle nodes
moved ahead of requests by the waitlist sweep, and when a node empties read from the expiry
of the leases whose GPU pods run on it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import select

from leases.models import AuditEvent, Lease, NodeMoveRecord
from leases.moves import Prices
from leases.rebalance import Demand
from leases.states import LeaseState
from leases.store import session_scope
from provisioners import nodes
from sandbox.kube import KubeSandbox
from tests.integration.history import add_past_leases
from tests.integration.workflows.conftest import gpu_pod, roomy_policy, running_lease
from tests.integration.workflows.test_pipeline import request, state_of
from workflows import api, demand, sweeps
from workflows.steps import moving, placing

CLUSTER = "sandbox"


@pytest.fixture
def kube() -> Iterator[KubeSandbox]:
    """The default sandbox cluster (real GFD labels and the GPU Operator simulation)."""
    with KubeSandbox(port=0, namespace_delay=0.0, operator_delay=0.0) as sandbox:
        yield sandbox


def _policy(**placement):
    policy = roomy_policy()
    tiers = [t.model_copy(update={"max_units": 8}) for t in policy.tiers]
    return policy.model_copy(
        update={"tiers": tiers, "placement": policy.placement.model_copy(update=placement)}
    )


def _history(rt, *, tier: str, count: int, over: timedelta, units: int = 2, hours: int = 8) -> None:
    """Record `count` leases of `tier` approved evenly over the last `over`, all since ended."""
    with session_scope(rt.engine) as session:
        add_past_leases(
            session, cluster=CLUSTER, tier=tier, count=count, over=over, now=rt.now(), units=units, hours=hours
        )


def _moves(rt) -> list[NodeMoveRecord]:
    with session_scope(rt.engine) as session:
        return list(session.exec(select(NodeMoveRecord).order_by(NodeMoveRecord.id)).all())


def _finish_held_move(rt) -> NodeMoveRecord:
    """Run the one node move the queue holds to its end; return its record."""
    [move_id] = rt.queue.held_moves
    while moving.advance_move(rt, move_id).again:
        pass
    [move] = _moves(rt)
    return move


def _tiers(kube) -> dict[str, str]:
    return {
        n["metadata"]["name"]: n["metadata"]["labels"].get("gpulease.io/tier")
        for n in kube.list("nodes")
        if n["metadata"]["labels"].get("gpulease.io/tier")
    }


def test_prices_come_from_approved_requests_after_the_warm_up(make_runtime):
    rt = make_runtime(policy=_policy(), nodes=(("n-full", "h100-full"), ("n-1g", "h100-1g")))
    inventory = [r.state for r in placing.read_inventory(rt, CLUSTER)]
    with session_scope(rt.engine) as session:
        assert demand.cluster_prices(session, rt, cluster=CLUSTER, inventory=inventory) is None
    _history(rt, tier="h100-full", count=3, over=timedelta(hours=1))
    with session_scope(rt.engine) as session:
        # An hour of requests is less than the warm-up: no prices yet.
        assert demand.cluster_prices(session, rt, cluster=CLUSTER, inventory=inventory) is None
    _history(rt, tier="h100-full", count=30, over=timedelta(hours=6))
    with session_scope(rt.engine) as session:
        prices = demand.cluster_prices(session, rt, cluster=CLUSTER, inventory=inventory)
    assert prices is not None
    assert prices.valuation.value("h100-full", 8) > 0
    assert prices.valuation.value("h100-1g", 56) == 0  # nobody asked for it
    assert (prices.move_margin, prices.drain_margin, prices.fallback_share) == (0.1, 0.5, 0.0)
    rt.policy = _policy(fallback_share=0.5, move_margin=0.2)
    with session_scope(rt.engine) as session:
        prices = demand.cluster_prices(session, rt, cluster=CLUSTER, inventory=inventory)
    assert (prices.move_margin, prices.fallback_share) == (0.2, 0.5)


def test_denied_requests_are_not_demand(make_runtime):
    rt = make_runtime(policy=_policy(), nodes=(("n-full", "h100-full"),))
    _history(rt, tier="h100-full", count=30, over=timedelta(hours=6))
    with session_scope(rt.engine) as session:
        for lease in session.exec(select(Lease)).all():
            lease.state = LeaseState.DENIED
    with session_scope(rt.engine) as session:
        assert demand.recent_arrivals(session, cluster=CLUSTER, since=rt.now() - timedelta(days=1)) == []


def test_the_sweep_moves_an_idle_node_to_where_demand_is(make_runtime, kube):
    rt = make_runtime(policy=_policy(), nodes=())
    before = _tiers(kube)
    # Whole GPUs were asked for all day, far beyond one node; nobody wanted 1g slices.
    _history(rt, tier="h100-full", count=60, over=timedelta(hours=12))
    rt.queue.run_moves = False
    sweeps.wake_waitlist(rt, CLUSTER)
    rt.queue.drain()
    # One move per sweep: max_moves_in_flight is 1 in the example policy.
    move = _finish_held_move(rt)
    assert (move.lease_id, move.from_tier, move.to_tier, move.step) == (None, "h100-1g", "h100-full", "done")
    assert before[move.node] == "h100-1g" and _tiers(kube)[move.node] == "h100-full"
    # The next sweep finds the demand still there and moves the next idle node.
    sweeps.wake_waitlist(rt, CLUSTER)
    rt.queue.drain()
    assert len(rt.queue.held_moves) == 2


def _drains(kube) -> dict[str, tuple[str, str | None]]:
    """Return each draining node's target tier and drain start (its annotations)."""
    out = {}
    for n in kube.list("nodes"):
        annotations = n["metadata"].get("annotations") or {}
        if annotations.get("gpulease.io/target-tier"):
            out[n["metadata"]["name"]] = (
                annotations["gpulease.io/target-tier"],
                annotations.get("gpulease.io/draining-since"),
            )
    return out


def test_the_sweep_drains_a_busy_node_for_where_demand_is_and_moves_it_once_empty(make_runtime, kube):
    rt = make_runtime(policy=_policy(), nodes=())
    before = _tiers(kube)
    donors = [name for name, tier in before.items() if tier in ("h100-1g", "h100-3g")]
    namespaces = {}
    for node in donors:  # every node that could give way is busy: none can move now
        namespaces[node] = running_lease(rt, kube, node=node, tier=before[node], hours=6)
    _history(rt, tier="h100-full", count=60, over=timedelta(hours=12))
    rt.queue.run_moves = False
    assert sweeps.wake_waitlist(rt, CLUSTER) == []
    rt.queue.drain()
    assert _moves(rt) == [] and rt.queue.held_moves == []
    [drained] = [
        n["metadata"]["name"]
        for n in kube.list("nodes")
        if (n["metadata"].get("annotations") or {}).get("gpulease.io/target-tier") == "h100-full"
    ]
    assert drained in donors
    # One node drains at a time (max_moves_in_flight is 1): the next sweep drains no other.
    sweeps.wake_waitlist(rt, CLUSTER)
    rt.queue.drain()
    annotated = [n for n in kube.list("nodes") if (n["metadata"].get("annotations") or {}).get("gpulease.io/target-tier")]
    assert len(annotated) == 1
    # Once its GPU pod has finished, the drained node moves to whole GPUs.
    kube.set_pod_phase(namespaces[drained], f"busy-{drained}", "Succeeded")
    sweeps.wake_waitlist(rt, CLUSTER)
    rt.queue.drain()
    move = _finish_held_move(rt)
    assert (move.node, move.to_tier, move.step) == (drained, "h100-full", "done")
    assert _tiers(kube)[drained] == "h100-full"


def test_a_drain_is_given_up_when_its_node_has_not_emptied_in_time(make_runtime, kube, clock):
    rt = make_runtime(policy=_policy(drain_timeout=timedelta(hours=10)), nodes=())
    before = _tiers(kube)
    donors = sorted(name for name, tier in before.items() if tier in ("h100-1g", "h100-3g"))
    # The first donor's lease ends in 8 hours, the others' in 3 days, and a GPU pod of no
    # lease may never leave: only the first is known to empty within the drain timeout.
    running_lease(rt, kube, node=donors[0], tier=before[donors[0]], hours=8)
    for node in donors[1:]:
        running_lease(rt, kube, node=node, tier=before[node], hours=72)
    gpu_pod(kube, "stray", donors[1])
    _history(rt, tier="h100-full", count=60, over=timedelta(hours=12))
    rt.queue.run_moves = False
    sweeps.wake_waitlist(rt, CLUSTER)
    rt.queue.drain()
    began = clock().strftime("%Y-%m-%dT%H:%M:%SZ")
    assert _drains(kube) == {donors[0]: ("h100-full", began)}
    # The lease is extended past the timeout: the drain goes on, its start unchanged, until
    # the timeout; then the node goes back to its pool and nothing else can drain in time.
    with session_scope(rt.engine) as session:
        lease = session.exec(select(Lease).where(Lease.namespace == f"run-{donors[0]}")).one()
        lease.expires_at = lease.expires_at + timedelta(days=2)
    clock.advance(timedelta(hours=9))
    sweeps.wake_waitlist(rt, CLUSTER)
    rt.queue.drain()
    assert _drains(kube) == {donors[0]: ("h100-full", began)}
    clock.advance(timedelta(hours=2))
    sweeps.wake_waitlist(rt, CLUSTER)
    rt.queue.drain()
    assert _drains(kube) == {}
    node = kube.get("nodes", donors[0])
    assert not [t for t in node["spec"].get("taints") or [] if t["key"] == "gpulease.io/draining"]
    with session_scope(rt.engine) as session:
        [event] = session.exec(select(AuditEvent).where(AuditEvent.action == "node.undrain")).all()
    assert event.data["node"] == donors[0]
    assert event.reason == "still running GPU pods 10h after its drain for h100-full began"
    assert _moves(rt) == []


def test_a_drain_without_a_start_gets_one_so_that_its_wait_is_bounded_too(make_runtime, kube, clock):
    rt = make_runtime(policy=_policy(rebalance=False), nodes=())
    node = next(name for name, tier in _tiers(kube).items() if tier == "h100-1g")
    running_lease(rt, kube, node=node, tier="h100-1g", hours=6)
    # Drained before drains were stamped: the target tier, but no start.
    nodes.patch_node(rt.kube(CLUSTER), node, retry=rt.retry, annotations={"gpulease.io/target-tier": "h100-full"})
    sweeps.wake_waitlist(rt, CLUSTER)
    rt.queue.drain()
    assert _drains(kube) == {node: ("h100-full", clock().strftime("%Y-%m-%dT%H:%M:%SZ"))}
    assert [t["key"] for t in kube.get("nodes", node)["spec"]["taints"]] == ["gpulease.io/draining"]


@pytest.mark.parametrize("setting", [{"pricing": False}, {"rebalance": False}])
def test_nothing_moves_ahead_of_requests_when_switched_off(make_runtime, kube, setting):
    rt = make_runtime(policy=_policy(**setting), nodes=())
    before = _tiers(kube)
    _history(rt, tier="h100-full", count=60, over=timedelta(hours=12))
    sweeps.wake_waitlist(rt, CLUSTER)
    rt.queue.drain()
    assert _moves(rt) == []
    assert _tiers(kube) == before


def test_a_node_empties_when_the_last_lease_on_it_expires(make_runtime, kube):
    rt = make_runtime(policy=_policy(), nodes=(("n-a", "h100-full"), ("n-b", "h100-full")))
    s = api.submit(request(tier="h100-full", units=2, namespace="train-a", duration=timedelta(hours=5)))
    api.decide(lease_id=s.lease_id, approver="U0APPROVER2", approve=True)
    rt.queue.drain()
    assert state_of(rt, s.lease_id) is LeaseState.ACTIVE
    gpu_pod(kube, "p-a", "n-a", "train-a")
    gpu_pod(kube, "p-b", "n-b")
    readings = placing.read_inventory(rt, CLUSTER)
    with session_scope(rt.engine) as session:
        expires = session.get(Lease, s.lease_id).expires_at
        states = {n.name: n for n in placing.with_expiries(session, CLUSTER, readings)}
    assert states["n-a"].empties_at == pytest.approx(expires.timestamp())
    # A GPU pod that belongs to no lease may never leave: when n-b empties is unknown.
    assert states["n-b"].empties_at is None


def test_prices_only_delay_a_request_up_to_the_priced_wait():
    approved = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    lease = Lease(
        namespace="a",
        cluster="c",
        requester="U",
        team="t",
        tier="h100-1g",
        units=1,
        duration_seconds=3600,
        created_at=approved - timedelta(hours=2),
        updated_at=approved,
        decided_at=approved,
    )
    prices = Prices(Demand({}))
    wait = timedelta(hours=4)
    assert placing.prices_for(lease, prices, now=approved + timedelta(hours=3, minutes=59), patience=wait) is prices
    assert placing.prices_for(lease, prices, now=approved + wait, patience=wait) is None
    assert placing.prices_for(lease, None, now=approved, patience=wait) is None
