"""Two placers on one cluster at once: the second decides only after the first has committed,
and from what it committed, so reserved units never exceed a pool's capacity."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import text

from leases.reservations import pool_usage
from leases.states import LeaseState
from leases.store import session_scope
from tests.integration.locks import wait_until_blocked_by
from tests.integration.workflows.conftest import roomy_policy
from tests.integration.workflows.test_pipeline import approved, request, state_of
from workflows import api
from workflows.steps import placing


def test_a_placer_sees_the_move_another_placer_committed_while_it_waited(make_runtime, kube, monkeypatch):
    rt = make_runtime(
        policy=roomy_policy().model_copy(
            update={"tiers": [t.model_copy(update={"max_units": 8}) for t in roomy_policy().tiers]}
        ),
        nodes=(("n-1g-0", "h100-1g", 1), ("n-1g-1", "h100-1g", 1)),  # 7 + 7 units of 1g
    )
    if rt.engine.dialect.name != "postgresql":
        pytest.skip("SQLite serialises writing transactions from their start: no interleaving")
    approved(rt, "U0APPROVER1", request(tier="h100-1g", units=7, namespace="hold", duration=timedelta(days=1)))
    # A whole GPU needs one of the 1g nodes moved; 4 more units of 1g fit only if it stays.
    full = api.submit(request(tier="h100-full", units=1, namespace="full", duration=timedelta(days=1)))
    api.decide(lease_id=full.lease_id, approver="U0APPROVER2", approve=True)
    more = api.submit(request(tier="h100-1g", units=4, namespace="more", duration=timedelta(days=1)))
    api.decide(lease_id=more.lease_id, approver="U0APPROVER1", approve=True)
    rt.queue.pending.clear()  # the two placements run below, side by side
    readings = placing.read_inventory(rt, "sandbox")
    record_moves = placing.start_moves

    def hold_until_the_other_waits(session, **kw):
        # The first placer has recorded its move and holds the pools: let the second one
        # start and reach the locks before this transaction commits.
        record_moves(session, **kw)
        pid = session.connection().execute(text("SELECT pg_backend_pid()")).scalar_one()
        second.start()
        wait_until_blocked_by(rt.engine, pid)

    monkeypatch.setattr(placing, "start_moves", hold_until_the_other_waits)
    second = threading.Thread(target=placing.place_lease, args=(rt, more.lease_id), kwargs={"readings": readings})
    placing.place_lease(rt, full.lease_id, readings=readings)
    second.join(30)
    assert not second.is_alive()
    assert state_of(rt, more.lease_id) is LeaseState.WAITLISTED
    with session_scope(rt.engine) as session:
        [one_g] = [p for p in pool_usage(session, cluster="sandbox") if p.tier == "h100-1g"]
    assert (one_g.capacity, one_g.reserved) == (7, 7)
