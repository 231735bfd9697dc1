"""The minute wake-up of the waitlist: one read of the cluster's nodes and pods, however many
leases wait, and the same placements as reading them for each lease."""

from __future__ import annotations

from datetime import timedelta

import pytest
from kubernetes.client import CoreV1Api
from sqlmodel import select

from config.durations import format_moment
from leases.errors import DomainError
from leases.models import AuditEvent, Lease, NodeMoveRecord
from leases.moves import summarise
from leases.records import audit_trail
from leases.reservations import pool_usage
from leases.states import LeaseState
from leases.store import session_scope
from tests.integration.history import add_past_leases
from tests.integration.workflows.conftest import gpu_node, roomy_policy, running_lease
from tests.integration.workflows.test_pipeline import approved, request, state_of
from workflows import api, demand, sweeps
from workflows.steps import moving, placing
from workflows.steps.requests import RequestRefused
from workflows.sweeps import wake_waitlist


def test_a_wake_up_reads_the_nodes_once_and_places_what_fits(make_runtime, kube, clock):
    rt = make_runtime(policy=roomy_policy(), nodes=(("h100-3g-0", "h100-3g", 2),))  # 4 units
    asked = [
        request(tier="h100-3g", units=2 if name.startswith("a") else 1, namespace=name, duration=timedelta(days=1))
        for name in ("a-0", "a-1", "b-0", "b-1", "b-2")
    ]
    leases = approved(rt, "U0APPROVER1", *asked, clock=clock)
    assert [state_of(rt, x) for x in leases] == [LeaseState.ACTIVE] * 2 + [LeaseState.WAITLISTED] * 3
    kube.create("nodes", gpu_node("h100-3g-1", "h100-3g", gpus=1))  # two more units
    kube.clear_requests()
    placed = wake_waitlist(rt)
    # Two units came: the two oldest one-unit requests take them, the third keeps waiting.
    assert placed == leases[2:4]
    assert state_of(rt, leases[4]) is LeaseState.WAITLISTED
    assert len(kube.requests("GET", "/api/v1/nodes")) == 1
    assert len(kube.requests("GET", "/api/v1/pods")) == 1


def _whole_nodes(*namespaces: str) -> list:
    """Return requests of a whole node of whole GPUs (8 units) for a day, one per namespace."""
    return [request(tier="h100-full", units=8, namespace=ns, duration=timedelta(days=1)) for ns in namespaces]


def _trail(rt, lease_id: str) -> list[str]:
    with session_scope(rt.engine) as session:
        return [event.action for event in audit_trail(session, lease_id=lease_id)]


def test_a_lease_that_waits_again_leaves_its_state_and_audit_trail_as_they_were(make_runtime, kube):
    rt = make_runtime(policy=roomy_policy(), nodes=(("h100-3g-0", "h100-3g", 1),))  # 2 units
    _, second = approved(
        rt,
        "U0APPROVER1",
        request(tier="h100-3g", units=2, namespace="first", duration=timedelta(days=1)),
        request(tier="h100-3g", units=1, namespace="second", duration=timedelta(days=1)),
    )
    assert state_of(rt, second) is LeaseState.WAITLISTED
    waited = _trail(rt, second)
    assert waited[-2:] == ["lease.placing", "lease.waitlisted"]
    for _ in range(3):  # three minutes of wake-ups, nothing freed
        assert wake_waitlist(rt) == []
        rt.queue.drain()
    assert state_of(rt, second) is LeaseState.WAITLISTED
    assert _trail(rt, second) == waited
    # Room comes: the lease leaves the waitlist the way a new one is placed.
    kube.create("nodes", gpu_node("h100-3g-1", "h100-3g", gpus=1))
    assert wake_waitlist(rt) == [second]
    assert _trail(rt, second)[len(waited):len(waited) + 2] == ["lease.placing", "lease.provisioning"]


def _annotated(kube) -> dict[str, str]:
    """Return each node's drain or move target (gpulease.io/target-tier)."""
    out = {}
    for node in kube.list("nodes"):
        target = (node["metadata"].get("annotations") or {}).get("gpulease.io/target-tier")
        if target:
            out[node["metadata"]["name"]] = target
    return out


def test_a_drain_decided_in_a_wake_up_counts_for_the_next_lease_of_it(make_runtime, kube):
    policy = roomy_policy()
    policy = policy.model_copy(
        update={
            "tiers": [t.model_copy(update={"max_units": 8}) for t in policy.tiers],
            # No node may move: the whole-GPU requests wait without draining anything yet.
            "clusters": [c.model_copy(update={"max_moves_in_flight": 0}) for c in policy.clusters],
        }
    )
    rt = make_runtime(policy=policy, nodes=(("n-3g-0", "h100-3g"), ("n-3g-1", "h100-3g")))
    leases = approved(rt, "U0APPROVER2", *_whole_nodes("train-a", "train-b"))
    assert [state_of(rt, x) for x in leases] == [LeaseState.WAITLISTED] * 2
    assert _annotated(kube) == {}
    for node in ("n-3g-0", "n-3g-1"):  # both 3g nodes get busy: only a drain can free one
        running_lease(rt, kube, node=node, tier="h100-3g", hours=6)
    assert wake_waitlist(rt) == []
    rt.queue.drain()
    # Each lease needs a whole node: the second one sees the first one's drain on its way and
    # drains the other node, rather than the same one again.
    assert _annotated(kube) == {"n-3g-0": "h100-full", "n-3g-1": "h100-full"}
    # Each requester hears which node drains for them, once.
    told = [s.notice.text for s in rt.notifier.sent if "still waits for h100-full" in s.notice.text]
    assert len(told) == 2 and {"n-3g-0", "n-3g-1"} == {t.split("draining ")[1].split(" ")[0] for t in told}
    assert wake_waitlist(rt) == []
    rt.queue.drain()
    assert len([s for s in rt.notifier.sent if "still waits for h100-full" in s.notice.text]) == 2


def test_a_wake_up_estimates_demand_once_for_every_lease_it_decides(make_runtime, kube, monkeypatch):
    policy = roomy_policy()
    policy = policy.model_copy(update={"tiers": [t.model_copy(update={"max_units": 8}) for t in policy.tiers]})
    rt = make_runtime(policy=policy, nodes=(("n-3g", "h100-3g"),))
    with session_scope(rt.engine) as session:  # demand is learnt: placement is priced
        add_past_leases(
            session, cluster="sandbox", tier="h100-3g", count=60, over=timedelta(hours=12), now=rt.now()
        )
    running_lease(rt, kube, node="n-3g", tier="h100-3g", hours=6)  # the only node is busy
    waiting = approved(rt, "U0APPROVER2", *_whole_nodes("wait-a", "wait-b", "wait-c"))
    assert [state_of(rt, x) for x in waiting] == [LeaseState.WAITLISTED] * 3
    reads = []
    real = demand.recent_arrivals

    def counted(session, *, cluster, since):
        reads.append(cluster)
        return real(session, cluster=cluster, since=since)

    monkeypatch.setattr(demand, "recent_arrivals", counted)
    assert sweeps.wake_waitlist(rt, "sandbox") == []
    # Three placements and the rebalancing after them, on one estimate.
    assert reads == ["sandbox"]
    # A lease placed on its own still estimates afresh.
    placing.place_lease(rt, waiting[0])
    assert reads == ["sandbox", "sandbox"]


def test_a_lease_that_ends_before_a_draining_node_empties_runs_on_it_meanwhile(make_runtime, kube):
    rt = make_runtime(policy=roomy_policy(), nodes=(("n-3g-0", "h100-3g", 1),))  # 2 units
    running_lease(rt, kube, node="n-3g-0", tier="h100-3g", hours=6)
    moving.drain(rt, "sandbox", "n-3g-0", "h100-full")
    short, long = approved(
        rt,
        "U0APPROVER1",
        request(tier="h100-3g", units=1, namespace="short", duration=timedelta(hours=1)),
        request(tier="h100-3g", units=1, namespace="long", duration=timedelta(days=1)),
    )
    # The node drains for six more hours: an hour's lease delays nothing, a day's would.
    assert state_of(rt, short) is LeaseState.ACTIVE
    assert state_of(rt, long) is LeaseState.WAITLISTED
    with session_scope(rt.engine) as session:
        [pool] = [p for p in pool_usage(session, cluster="sandbox") if p.tier == "h100-3g"]
    # Both units are on the draining node: none is free for a new lease that outlasts it.
    assert (pool.capacity, pool.draining, pool.reserved, pool.free) == (2, 2, 1, 0)


def test_a_waiting_lease_keeps_waiting_while_the_nodes_it_needs_are_gone(make_runtime, kube):
    policy = roomy_policy()
    policy = policy.model_copy(update={"tiers": [t.model_copy(update={"max_units": 8}) for t in policy.tiers]})
    rt = make_runtime(policy=policy, nodes=(("n-3g-0", "h100-3g"),))
    running_lease(rt, kube, node="n-3g-0", tier="h100-3g", hours=6)
    [big] = approved(rt, "U0APPROVER2", *_whole_nodes("big"))
    assert state_of(rt, big) is LeaseState.WAITLISTED
    node = kube.get("nodes", "n-3g-0")
    CoreV1Api(rt.kube("sandbox")).delete_node("n-3g-0")  # the only H100 node leaves for a while
    assert wake_waitlist(rt) == []
    rt.queue.drain()
    assert state_of(rt, big) is LeaseState.WAITLISTED
    # A new request that no node could hold is refused at once, as before.
    [other] = approved(rt, "U0APPROVER2", *_whole_nodes("other"))
    assert state_of(rt, other) is LeaseState.FAILED
    node["metadata"].pop("resourceVersion", None)
    kube.create("nodes", node)
    assert wake_waitlist(rt) == []  # back, and still busy: it waits as it did
    assert state_of(rt, big) is LeaseState.WAITLISTED


def test_a_waiting_lease_is_offered_the_fallbacks_with_room_now_and_only_those(make_runtime, kube):
    policy = roomy_policy()
    tiers = [
        t.model_copy(update={"fallback": ["h100-shared", "h100-3g"]}) if t.name == "h100-1g" else t
        for t in policy.tiers
    ]
    policy = policy.model_copy(
        update={
            "tiers": tiers,
            "clusters": [c.model_copy(update={"max_moves_in_flight": 0}) for c in policy.clusters],
        }
    )
    rt = make_runtime(
        policy=policy, nodes=(("n-1g", "h100-1g", 1), ("n-shared", "h100-shared", 1), ("n-3g", "h100-3g", 1))
    )
    day = timedelta(days=1)
    approved(
        rt,
        "U0APPROVER1",
        request(tier="h100-1g", units=4, namespace="one-a", duration=day),
        request(tier="h100-1g", units=3, namespace="one-b", duration=day),
        request(tier="h100-3g", units=2, namespace="three", duration=day),
    )
    # Two units: approved by a person (one unit would be approved by the policy's rule, for 1g
    # and time-shares only, so 3g would need its own approval).
    [lease] = approved(rt, "U0APPROVER1", request(tier="h100-1g", units=2, namespace="small", duration=day))
    assert state_of(rt, lease) is LeaseState.WAITLISTED
    assert api.lease_by_namespace("small").fallback_tiers == ("h100-shared",)  # 3g is full
    # The time-shares fill up and the 3g lease ends: 3g is on offer now, the shares no more.
    approved(
        rt,
        "U0APPROVER1",
        request(tier="h100-shared", units=2, namespace="share-a", duration=day),
        request(tier="h100-shared", units=2, namespace="share-b", duration=day),
    )
    api.release(namespace="three", actor="U0ALICE")
    rt.queue.drain()
    wake_waitlist(rt)
    rt.queue.drain()
    assert api.lease_by_namespace("small").fallback_tiers == ("h100-3g",)
    offers = [s.notice.data["tiers"] for s in rt.notifier.sent if s.notice.kind == "lease.fallback_offered"]
    assert offers == [["h100-shared"], ["h100-3g"]]
    with pytest.raises(DomainError, match="h100-shared is not on offer for small any more"):
        api.accept_fallback(lease_id=lease, tier="h100-shared", actor="U0ALICE")
    assert api.accept_fallback(lease_id=lease, tier="h100-3g", actor="U0ALICE") == "h100-3g"
    rt.queue.drain()
    assert state_of(rt, lease) is LeaseState.ACTIVE
    assert api.lease_by_namespace("small").tier == "h100-3g"
    # It was asked as a 1g slice: demand learns a 1g request, not a 3g one.
    with session_scope(rt.engine) as session:
        arrivals = demand.recent_arrivals(session, cluster="sandbox", since=rt.now() - timedelta(hours=1))
    assert [tier for tier, *_ in arrivals if tier in ("h100-1g", "h100-3g")].count("h100-1g") == 3


def _waiting_at_most(limit: timedelta):
    policy = roomy_policy()
    return policy.model_copy(
        update={
            "tiers": [t.model_copy(update={"max_units": 8}) for t in policy.tiers],
            "placement": policy.placement.model_copy(update={"max_wait": limit}),
        }
    )


def test_a_lease_waitlisted_past_the_longest_wait_is_cancelled_and_its_requester_told(make_runtime, kube, clock):
    rt = make_runtime(policy=_waiting_at_most(timedelta(hours=2)), nodes=(("n-3g-0", "h100-3g"),))
    running_lease(rt, kube, node="n-3g-0", tier="h100-3g", hours=1)
    [big] = approved(rt, "U0APPROVER2", *_whole_nodes("big"))
    assert state_of(rt, big) is LeaseState.WAITLISTED
    [waiting] = [s.notice for s in rt.notifier.sent if s.notice.kind == "lease.waitlisted"]
    assert waiting.text.endswith(f"It is cancelled if still waiting at {format_moment(rt.now() + timedelta(hours=2))}.")
    clock.advance(timedelta(hours=2))
    assert sweeps.sweep(rt).wait_expired == []  # two hours exactly: still waiting
    clock.advance(timedelta(seconds=1))
    assert sweeps.sweep(rt).wait_expired == [big]
    rt.queue.drain()
    assert state_of(rt, big) is LeaseState.CANCELLED
    [notice] = [s.notice for s in rt.notifier.sent if s.notice.kind == "lease.wait_expired"]
    assert notice.text == (
        "big was cancelled: no h100-full capacity within 2h of approval. Ask again later, or for another tier."
    )
    assert _trail(rt, big)[-1] == "lease.cancelled"
    assert sweeps.sweep(rt).wait_expired == []


def test_no_node_is_drained_for_a_lease_that_stops_waiting_before_it_empties(make_runtime, kube):
    rt = make_runtime(policy=_waiting_at_most(timedelta(hours=2)), nodes=(("n-3g-0", "h100-3g"),))
    running_lease(rt, kube, node="n-3g-0", tier="h100-3g", hours=6)  # empties in 6 hours
    approved(rt, "U0APPROVER2", *_whole_nodes("big"))
    assert _annotated(kube) == {}
    rt.policy = _waiting_at_most(timedelta(hours=8))
    approved(rt, "U0APPROVER2", *_whole_nodes("patient"))
    assert _annotated(kube) == {"n-3g-0": "h100-full"}


def test_no_fallback_is_offered_that_would_skip_its_tiers_approvers(make_runtime, kube):
    policy = roomy_policy()
    policy = policy.model_copy(
        update={"clusters": [c.model_copy(update={"max_moves_in_flight": 0}) for c in policy.clusters]}
    )
    rt = make_runtime(policy=policy, nodes=(("n-3g", "h100-3g", 1), ("n-full", "h100-full", 1)))
    day = timedelta(days=1)
    # 3g falls back to whole GPUs, which only U0APPROVER2 may approve; U0APPROVER1 approved these.
    _, waiting = approved(
        rt,
        "U0APPROVER1",
        request(tier="h100-3g", units=2, namespace="first", duration=day),
        request(tier="h100-3g", units=1, namespace="second", duration=day),
    )
    assert state_of(rt, waiting) is LeaseState.WAITLISTED
    assert api.lease_by_namespace("second").fallback_tiers == ()
    assert "lease.fallback_offered" not in rt.notifier.kinds("requester")
    # Even an offer made under other rules cannot be taken without those approvers.
    with session_scope(rt.engine) as session:
        session.get(Lease, waiting).fallback_tiers = ["h100-full"]
    with pytest.raises(RequestRefused, match="h100-full needs the approval of its own approvers"):
        api.accept_fallback(lease_id=waiting, tier="h100-full", actor="U0ALICE")
    assert api.lease_by_namespace("second").tier == "h100-3g"


def test_an_admins_drain_of_a_node_the_placer_was_draining_makes_it_the_admins(make_runtime, kube):
    rt = make_runtime(policy=_waiting_at_most(timedelta(days=1)), nodes=(("n-3g-0", "h100-3g"),))
    namespace = running_lease(rt, kube, node="n-3g-0", tier="h100-3g", hours=6)
    [big] = approved(rt, "U0APPROVER2", *_whole_nodes("big"))
    assert _annotated(kube) == {"n-3g-0": "h100-full"}  # drained for it
    api.drain(node="n-3g-0", actor="U0ADMIN")  # for maintenance
    rt.queue.drain()
    node = kube.get("nodes", "n-3g-0")
    assert node["spec"]["unschedulable"] and _annotated(kube) == {}
    assert not [t for t in node["spec"].get("taints") or [] if t["key"] == "gpulease.io/draining"]
    with session_scope(rt.engine) as session:
        [event] = [e for e in session.exec(select(AuditEvent)).all() if e.action == "node.drain" and e.reason == "cordoned by an admin"]
    assert event.actor == "U0ADMIN"
    # Once empty, the admin's node stays as it is: not moved, and not counted as on its way.
    kube.set_pod_phase(namespace, "busy-n-3g-0", "Succeeded")
    wake_waitlist(rt)
    rt.queue.drain()
    assert state_of(rt, big) is LeaseState.WAITLISTED
    node = kube.get("nodes", "n-3g-0")
    assert node["spec"]["unschedulable"] and node["metadata"]["labels"]["gpulease.io/tier"] == "h100-3g"
    with session_scope(rt.engine) as session:
        assert session.exec(select(NodeMoveRecord)).all() == []
        inventory = placing.with_expiries(session, "sandbox", placing.read_inventory(rt, "sandbox"))
    assert summarise(inventory=inventory, reservations={}, tiers=rt.tiers).incoming["h100-full"] == 0
