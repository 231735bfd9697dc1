"""The minute wake-up of the waitlist: one read of the cluster's nodes and pods, however many
leases wait, and the same placements as reading them for each lease."""

from __future__ import annotations

from datetime import timedelta

from leases.states import LeaseState
from tests.integration.workflows.conftest import gpu_node, roomy_policy
from tests.integration.workflows.test_pipeline import request, state_of
from workflows import api
from workflows.sweeps import wake_waitlist


def test_a_wake_up_reads_the_nodes_once_and_places_what_fits(make_runtime, kube, clock):
    rt = make_runtime(policy=roomy_policy(), nodes=(("h100-3g-0", "h100-3g", 2),))  # 4 units
    leases = []
    for name in ("a-0", "a-1", "b-0", "b-1", "b-2"):
        s = api.submit(request(tier="h100-3g", units=2 if name.startswith("a") else 1, namespace=name,
                               duration=timedelta(days=1)))
        api.decide(lease_id=s.lease_id, approver="U0APPROVER1", approve=True)
        rt.queue.drain()
        leases.append(s.lease_id)
        clock.advance(timedelta(minutes=1))  # so that the waitlist has an order
    assert [state_of(rt, x) for x in leases] == [LeaseState.ACTIVE] * 2 + [LeaseState.WAITLISTED] * 3
    kube.create("nodes", gpu_node("h100-3g-1", "h100-3g", gpus=1))  # two more units
    kube.clear_requests()
    placed = wake_waitlist(rt)
    # Two units came: the two oldest one-unit requests take them, the third keeps waiting.
    assert placed == leases[2:4]
    assert state_of(rt, leases[4]) is LeaseState.WAITLISTED
    assert len(kube.requests("GET", "/api/v1/nodes")) == 1
    assert len(kube.requests("GET", "/api/v1/pods")) == 1
