"""A lease's end against what runs beside it: sweeps and follow-up tasks that decided from rows
read a moment earlier, and clicks that arrive twice or together.

Each interleaving is forced by running the competing action inside the gap (a wrapped step of
the workflow itself), so the order is the one that loses work when the guard is missing.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import select

from leases.errors import AlreadyDecided
from leases.models import AuditEvent, Lease
from leases.reservations import held_reservation
from leases.states import LeaseState
from leases.store import session_scope
from tests.integration.workflows.test_pipeline import kinds, request, state_of
from workflows import api, sweeps
from workflows.steps import extending, provisioning, reclaiming


def _actions(rt, lease_id: str) -> list[tuple[str, str]]:
    with session_scope(rt.engine) as session:
        events = session.exec(
            select(AuditEvent).where(AuditEvent.lease_id == lease_id).order_by(AuditEvent.id)
        ).all()
        return [(e.action, e.actor) for e in events]


def test_expiry_sweep_leaves_a_lease_extended_after_it_was_selected(make_runtime, clock, kube, monkeypatch):
    rt = make_runtime()
    s = api.submit(request(duration=timedelta(hours=8)))
    rt.queue.drain()
    clock.advance(timedelta(hours=8))
    reclaim = sweeps.start_reclaim

    def extended_first(rt_, **kw):
        # The sweep has read the expired lease; the requester's Extend commits before it locks.
        assert api.extend(lease_id=kw["lease_id"], actor="U0ALICE", by=timedelta(days=1)).outcome == "extended"
        return reclaim(rt_, **kw)

    monkeypatch.setattr(sweeps, "start_reclaim", extended_first)
    report = sweeps.sweep(rt)
    rt.queue.drain()
    assert state_of(rt, s.lease_id) is LeaseState.ACTIVE
    assert report.expired == []
    assert kube.get("namespaces", "alice-nb") is not None
    assert "lease.reclaiming" not in [action for action, _ in _actions(rt, s.lease_id)]


def test_a_scheduled_reclaim_names_the_admin_and_is_rechecked_when_due(make_runtime, clock, monkeypatch):
    rt = make_runtime()
    s = api.submit(request(duration=timedelta(hours=8)))
    rt.queue.drain()
    reclaiming.schedule_reclaim(rt, lease_id=s.lease_id, at=clock() + timedelta(hours=1), actor="U0ADMIN")
    assert ("lease.reclaim_scheduled", "U0ADMIN") in _actions(rt, s.lease_id)
    clock.advance(timedelta(hours=1))
    reclaim = sweeps.start_reclaim

    def moved_first(rt_, **kw):
        # The admin moves the reclaim two hours later after the sweep read the due one.
        reclaiming.schedule_reclaim(rt_, lease_id=kw["lease_id"], at=clock() + timedelta(hours=2), actor="U0ADMIN")
        return reclaim(rt_, **kw)

    monkeypatch.setattr(sweeps, "start_reclaim", moved_first)
    assert sweeps.sweep(rt).scheduled == []
    assert state_of(rt, s.lease_id) in (LeaseState.ACTIVE, LeaseState.EXPIRING)  # warned, not reclaimed


def _released_before_applying(monkeypatch, module) -> None:
    """Have the first apply of `module` find its lease released and reclaimed: the step let go
    of the row, and the release and its reclaim finish before the apply reaches the server."""
    apply = module.apply_bundle
    released = []

    def released_meanwhile(rt_, spec):
        if not released:
            released.append(api.release(lease_id=spec.lease_id, actor="U0ALICE"))
            reclaiming.reclaim(rt_, spec.lease_id)
        return apply(rt_, spec)

    monkeypatch.setattr(module, "apply_bundle", released_meanwhile)


def test_a_release_during_provisioning_leaves_no_namespace(make_runtime, kube, monkeypatch):
    rt = make_runtime()
    _released_before_applying(monkeypatch, provisioning)
    s = api.submit(request())
    rt.queue.drain()
    assert state_of(rt, s.lease_id) is LeaseState.RECLAIMED
    assert kube.get("namespaces", "alice-nb") is None
    assert kube.list("resourcequotas", namespace="alice-nb") == []
    with session_scope(rt.engine) as session:
        assert held_reservation(session, lease_id=s.lease_id) is None


def test_a_refresh_after_a_release_does_not_bring_the_namespace_back(make_runtime, kube, monkeypatch):
    rt = make_runtime()
    s = api.submit(request(duration=timedelta(hours=8)))
    rt.queue.drain()
    api.extend(lease_id=s.lease_id, actor="U0ALICE", by=timedelta(hours=4))  # queues a refresh
    _released_before_applying(monkeypatch, extending)
    rt.queue.drain()
    assert state_of(rt, s.lease_id) is LeaseState.RECLAIMED
    assert kube.get("namespaces", "alice-nb") is None


def test_compensation_leaves_a_lease_another_attempt_made_active(make_runtime, kube):
    # The last retry of one provision task gives up after another attempt activated the lease.
    rt = make_runtime()
    s = api.submit(request())
    rt.queue.drain()
    assert provisioning.compensate(rt, s.lease_id, reason="gave up after retries: 503") == LeaseState.ACTIVE
    assert state_of(rt, s.lease_id) is LeaseState.ACTIVE
    assert kube.get("namespaces", "alice-nb") is not None


def test_one_extend_click_delivered_twice_extends_once(make_runtime):
    rt = make_runtime()
    s = api.submit(request(duration=timedelta(hours=8)))
    rt.queue.drain()
    api.extend(lease_id=s.lease_id, actor="U0ALICE", by=timedelta(days=1), expected_extensions=0)
    with pytest.raises(AlreadyDecided, match="extended since"):
        api.extend(lease_id=s.lease_id, actor="U0ALICE", by=timedelta(days=1), expected_extensions=0)
    with session_scope(rt.engine) as session:
        assert session.get(Lease, s.lease_id).extensions == 1


def _past_the_caps(rt, lease_id: str) -> None:
    for _ in range(2):
        api.extend(lease_id=lease_id, actor="U0ALICE", by=timedelta(hours=1))
    assert api.extend(lease_id=lease_id, actor="U0ALICE", by=timedelta(days=1)).outcome == "approval-required"


def test_asking_again_after_a_denial_reaches_the_approvers_and_each_denial_is_told(make_runtime):
    rt = make_runtime()
    s = api.submit(request(duration=timedelta(hours=8)))
    rt.queue.drain()
    _past_the_caps(rt, s.lease_id)
    rt.queue.drain()
    api.deny_extension(lease_id=s.lease_id, approver="U0APPROVER1", by=timedelta(days=1), expected_extensions=2)
    # The same length again: a new request, with its own card.
    assert api.extend(lease_id=s.lease_id, actor="U0ALICE", by=timedelta(days=1)).outcome == "approval-required"
    rt.queue.drain()
    assert kinds(rt, "approval_card").count("extension.requested") == 2
    api.deny_extension(lease_id=s.lease_id, approver="U0APPROVER1", by=timedelta(days=1), expected_extensions=2)
    rt.queue.drain()
    assert kinds(rt, "requester").count("lease.extension_denied") == 2


def test_allow_and_deny_of_one_extension_request_the_first_wins(make_runtime):
    rt = make_runtime()
    s = api.submit(request(duration=timedelta(hours=8)))
    rt.queue.drain()
    _past_the_caps(rt, s.lease_id)
    api.deny_extension(lease_id=s.lease_id, approver="U0APPROVER1", by=timedelta(days=1), expected_extensions=2)
    with pytest.raises(AlreadyDecided, match="denied"):
        api.decide_extension(lease_id=s.lease_id, approver="U0APPROVER1", by=timedelta(days=1), expected_extensions=2)
    _past_the_caps_again = api.extend(lease_id=s.lease_id, actor="U0ALICE", by=timedelta(days=1))
    assert _past_the_caps_again.outcome == "approval-required"
    api.decide_extension(lease_id=s.lease_id, approver="U0APPROVER1", by=timedelta(days=1), expected_extensions=2)
    with pytest.raises(AlreadyDecided, match="extended since"):
        api.deny_extension(lease_id=s.lease_id, approver="U0APPROVER1", by=timedelta(days=1), expected_extensions=2)
    rt.queue.drain()
    with session_scope(rt.engine) as session:
        assert session.get(Lease, s.lease_id).extensions == 3
    assert kinds(rt, "requester").count("lease.extension_denied") == 1


def test_a_refused_reclaim_keeps_the_units_and_tells_the_admins_once(make_runtime, kube, clock):
    from workflows import tasks

    rt = make_runtime()
    s = api.submit(request())
    rt.queue.drain()
    kube.deny(verb="delete", resource="namespaces")  # the service account lost a permission
    api.release(lease_id=s.lease_id, actor="U0ALICE")
    rt.queue.pending.clear()
    for _ in range(3):  # the task, then the stuck-step sweep's tries
        assert tasks.reclaim.apply(args=(s.lease_id,)).get() == LeaseState.RECLAIMING
        clock.advance(rt.stuck_after + timedelta(seconds=1))
        assert sweeps.sweep(rt).resumed == [s.lease_id]
        rt.queue.pending.clear()
    rt.queue("deliver")
    rt.queue.drain()
    assert kinds(rt, "admins") == ["admin.reclaim_stuck"]
    assert "cannot be reclaimed" in rt.notifier.sent[-1].notice.text
    with session_scope(rt.engine) as session:
        assert held_reservation(session, lease_id=s.lease_id) is not None
    kube.clear_denials()
    assert tasks.reclaim.apply(args=(s.lease_id,)).get() == LeaseState.RECLAIMED


def test_a_failed_apply_after_a_release_leaves_no_namespace(make_runtime, kube, monkeypatch):
    from leases.errors import PermanentError

    rt = make_runtime()
    apply = provisioning.apply_bundle

    def released_then_refused(rt_, spec):
        api.release(lease_id=spec.lease_id, actor="U0ALICE")
        reclaiming.reclaim(rt_, spec.lease_id)
        apply(rt_, spec)  # the namespace is created again...
        raise PermanentError("refused by the API server (422)")  # ...and the apply then fails

    monkeypatch.setattr(provisioning, "apply_bundle", released_then_refused)
    s = api.submit(request())
    rt.queue.drain()
    assert state_of(rt, s.lease_id) is LeaseState.RECLAIMED
    assert kube.get("namespaces", "alice-nb") is None


def test_asking_twice_for_the_same_extension_posts_one_card(make_runtime):
    rt = make_runtime()
    s = api.submit(request(duration=timedelta(hours=8)))
    rt.queue.drain()
    _past_the_caps(rt, s.lease_id)
    again = api.extend(lease_id=s.lease_id, actor="U0ALICE", by=timedelta(days=1))  # a double click
    assert again.outcome == "approval-required"
    other = api.extend(lease_id=s.lease_id, actor="U0ALICE", by=timedelta(days=2))  # a new request
    assert other.outcome == "approval-required"
    rt.queue.drain()
    assert kinds(rt, "approval_card").count("extension.requested") == 2
