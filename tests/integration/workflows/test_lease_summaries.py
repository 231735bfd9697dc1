"""What `list` and `status` show of a lease: time left only while the lease runs to an end."""

from __future__ import annotations

from leases.states import LeaseState
from tests.integration.workflows.test_pipeline import request
from workflows import api


def test_time_left_is_shown_while_running_and_not_once_the_lease_is_being_reclaimed(make_runtime):
    rt = make_runtime()
    api.submit(request())
    rt.queue.drain()
    (running,) = api.leases_of("U0ALICE")
    assert running.state == LeaseState.ACTIVE and running.time_left is not None
    assert running.time_left == running.expires_at - rt.now()
    api.release(namespace="alice-nb", actor="U0ALICE")
    rt.queue.pending.clear()  # the reclaim has not run yet
    (ending,) = api.leases_of("U0ALICE")
    assert ending.state == LeaseState.RECLAIMING and ending.time_left is None
    assert api.lease_by_namespace("alice-nb").time_left is None
