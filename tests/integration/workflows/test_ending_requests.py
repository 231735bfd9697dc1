"""Ending a request that is not running yet (`/gpu-admin revoke NS`, `/gpu-namespace release
NS`) cancels it, and what people are told about a request is said in plain words."""

from __future__ import annotations

from datetime import timedelta

import pytest

from config.durations import format_moment
from leases.errors import AlreadyDecided, NotAuthorised
from leases.models import Lease
from leases.reservations import held_reservation
from leases.states import LeaseState
from leases.store import session_scope
from tests.integration.workflows.test_pipeline import approved, request, state_of
from workflows import api, sweeps


def _notices(rt, target: str):
    return [s.notice for s in rt.notifier.sent if s.target == target]


def test_an_admin_revokes_a_request_waiting_for_approval(make_runtime):
    rt = make_runtime()
    s = api.submit(request(units=2))  # past the auto-approval rule: an approver is asked
    assert s.approval == "required"
    rt.queue.drain()
    assert api.revoke(namespace="alice-nb", actor="U0ADMIN", reason="maintenance") == "cancelled"
    assert state_of(rt, s.lease_id) is LeaseState.CANCELLED
    rt.queue.drain()
    [card] = [n for n in _notices(rt, "approval_update") if n.kind == "approval.cancelled"]
    assert card.text == "Cancelled by <@U0ADMIN>: maintenance"
    assert card.data["decided_by"] == "U0ADMIN" and card.data["reason"] == "maintenance"
    told = _notices(rt, "requester")[-1]
    assert told.kind == "lease.cancelled"
    assert told.text == "alice-nb was cancelled by <@U0ADMIN> before it started: maintenance."
    # The approver who clicks the card late is told what happened, in words.
    with pytest.raises(AlreadyDecided) as late:
        api.decide(lease_id=s.lease_id, approver="U0APPROVER1", approve=True)
    assert late.value.message == (
        f"This request was cancelled by <@U0ADMIN> at {format_moment(rt.now())}: maintenance."
    )


def test_the_requester_releases_a_request_waiting_for_approval(make_runtime):
    rt = make_runtime()
    s = api.submit(request(units=2))
    rt.queue.drain()
    with pytest.raises(NotAuthorised):
        api.release(namespace="alice-nb", actor="U0BOB")  # neither the requester nor an admin
    with pytest.raises(NotAuthorised):
        api.revoke(namespace="alice-nb", actor="U0ALICE")  # revoke is for admins
    assert state_of(rt, s.lease_id) is LeaseState.PENDING_APPROVAL
    assert api.release(namespace="alice-nb", actor="U0ALICE") == "cancelled"
    rt.queue.drain()
    [card] = [n for n in _notices(rt, "approval_update") if n.kind == "approval.cancelled"]
    assert card.text == "Withdrawn by <@U0ALICE>"
    assert _notices(rt, "requester")[-1].text == "alice-nb was cancelled."
    with pytest.raises(AlreadyDecided) as late:
        api.decide(lease_id=s.lease_id, approver="U0APPROVER1", approve=True)
    assert late.value.message == f"This request was withdrawn by its requester at {format_moment(rt.now())}."


def test_an_approved_request_not_placed_yet_is_cancelled(make_runtime):
    rt = make_runtime()
    s = api.submit(request())  # approved by the policy, placing still queued
    assert state_of(rt, s.lease_id) is LeaseState.APPROVED
    assert api.release(lease_id=s.lease_id, actor="U0ALICE") == "cancelled"
    rt.queue.drain()  # the queued placing finds it cancelled and does nothing
    assert state_of(rt, s.lease_id) is LeaseState.CANCELLED


def test_an_admin_revokes_a_waitlisted_lease(make_runtime, clock):
    rt = make_runtime(nodes=(("n-1g", "h100-1g", 1),))  # 7 units
    first, waiting = approved(
        rt, "U0APPROVER1",
        request(units=4, namespace="a", duration=timedelta(hours=8)),
        request(units=4, namespace="b", duration=timedelta(hours=8)),
    )
    assert state_of(rt, waiting) is LeaseState.WAITLISTED
    assert api.revoke(namespace="b", actor="U0ADMIN") == "cancelled"
    rt.queue.drain()
    assert state_of(rt, waiting) is LeaseState.CANCELLED
    told = _notices(rt, "requester")[-1]
    assert (told.kind, told.text) == ("lease.cancelled", "b was cancelled by <@U0ADMIN> before it started.")
    # A running lease is still reclaimed.
    assert api.revoke(namespace="a", actor="U0ADMIN") == "reclaiming"
    rt.queue.drain()
    assert state_of(rt, first) is LeaseState.RECLAIMED
    with session_scope(rt.engine) as session:
        assert held_reservation(session, lease_id=first) is None


def test_deciding_an_expired_request_says_it_expired(make_runtime, clock):
    rt = make_runtime()
    s = api.submit(request(units=2))
    clock.advance(timedelta(hours=25))
    expired_at = clock()
    sweeps.sweep(rt)
    clock.advance(timedelta(hours=1))
    with pytest.raises(AlreadyDecided) as late:
        api.decide(lease_id=s.lease_id, approver="U0APPROVER1", approve=True)
    assert late.value.message == f"This request expired without a decision at {format_moment(expired_at)}."
    assert "expired_unapproved" not in late.value.message


def test_the_ready_message_shows_the_expiry_as_every_message_does(make_runtime):
    rt = make_runtime()
    s = api.submit(request())
    rt.queue.drain()
    [active] = [n for n in _notices(rt, "requester") if n.kind == "lease.active"]
    with session_scope(rt.engine) as session:
        expires_at = session.get(Lease, s.lease_id).expires_at
    assert active.text == f"alice-nb is ready: 1× h100-1g until {format_moment(expires_at)}."
