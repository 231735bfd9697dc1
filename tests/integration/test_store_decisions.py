"""Approving and denying requests, and the approval timeout, on a real database."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from sqlmodel import func, select

from leases.errors import AlreadyDecided, DomainError, NotAuthorised
from leases.lifecycle import LeaseState, decide, expire_unapproved, transition
from leases.models import ApprovalDecision, AuditEvent
from leases.records import audit_trail, get_lease
from leases.store import make_engine, session_scope

S = LeaseState


def _pending(engine, make_lease, now, **overrides):
    with session_scope(engine) as session:
        lease = make_lease(session, now=now, **overrides)
        transition(session, lease=lease, to=S.PENDING_APPROVAL, actor="policy", reason=None, now=now)
    return lease.id


def _snapshot(engine, lease_id):
    with session_scope(engine) as session:
        lease = get_lease(session, lease_id=lease_id)
        decisions = session.exec(select(func.count()).select_from(ApprovalDecision)).one()
        events = session.exec(select(func.count()).where(AuditEvent.lease_id == lease_id)).one()
        return lease.state, lease.version, lease.decided_at, decisions, events


def test_approver_approves_a_pending_request(engine, make_lease, now):
    lease_id = _pending(engine, make_lease, now)
    later = now + timedelta(minutes=3)
    with session_scope(engine) as session:
        lease = get_lease(session, lease_id=lease_id)
        decision = decide(session, lease=lease, approver="U_BOSS", approve=True, reason=None, now=later)
    assert (decision.approver, decision.decision, decision.decided_at) == ("U_BOSS", "approve", later)
    with session_scope(engine) as session:
        lease = get_lease(session, lease_id=lease_id)
        assert (lease.state, lease.decided_at) == (S.APPROVED, later)
        last = audit_trail(session, lease_id=lease_id)[-1]
        assert (last.actor, last.from_state, last.to_state) == ("U_BOSS", S.PENDING_APPROVAL, S.APPROVED)


def test_deny_needs_and_records_a_reason(engine, make_lease, now):
    lease_id = _pending(engine, make_lease, now)
    with session_scope(engine) as session, pytest.raises(DomainError) as refused:
        decide(session, lease=get_lease(session, lease_id=lease_id), approver="U_BOSS",
               approve=False, reason="  ", now=now)
    assert refused.value.field == "reason"
    with session_scope(engine) as session:
        lease = get_lease(session, lease_id=lease_id)
        decide(session, lease=lease, approver="U_BOSS", approve=False, reason="pool is full", now=now)
        assert lease.state is S.DENIED
        assert audit_trail(session, lease_id=lease_id)[-1].reason == "pool is full"


def test_auto_approval_by_policy_records_the_rule(engine, make_lease, now):
    with session_scope(engine) as session:
        lease = make_lease(session)
        decide(session, lease=lease, approver="policy", approve=True, reason=None, now=now,
               rule="small-short")
        assert lease.state is S.APPROVED
        stored = session.exec(select(ApprovalDecision)).one()
        assert (stored.approver, stored.rule) == ("policy", "small-short")
        event = audit_trail(session, lease_id=lease.id)[-1]
        assert (event.from_state, event.to_state, event.data) == (
            S.REQUESTED, S.APPROVED, {"rule": "small-short"}
        )


@pytest.mark.parametrize("approve", [True, False], ids=["approve", "deny"])
def test_requester_cannot_decide_their_own_request(engine, make_lease, now, approve):
    lease_id = _pending(engine, make_lease, now, requester="U_SELF")
    before = _snapshot(engine, lease_id)
    with session_scope(engine) as session, pytest.raises(NotAuthorised):
        decide(session, lease=get_lease(session, lease_id=lease_id), approver="U_SELF",
               approve=approve, reason="mine", now=now)
    assert _snapshot(engine, lease_id) == before


@pytest.mark.parametrize("second", [True, False], ids=["approve-again", "deny-after"])
def test_second_decision_is_refused_and_changes_nothing(engine, make_lease, now, second):
    lease_id = _pending(engine, make_lease, now)
    with session_scope(engine) as session:
        decide(session, lease=get_lease(session, lease_id=lease_id), approver="U_A",
               approve=True, reason=None, now=now)
    before = _snapshot(engine, lease_id)
    with session_scope(engine) as session, pytest.raises(AlreadyDecided) as refused:
        decide(session, lease=get_lease(session, lease_id=lease_id), approver="U_B",
               approve=second, reason="late", now=now + timedelta(minutes=1))
    assert "already approved by <@U_A>" in refused.value.message
    assert _snapshot(engine, lease_id) == before


def test_cancelled_request_cannot_be_decided(engine, make_lease, now):
    lease_id = _pending(engine, make_lease, now)
    with session_scope(engine) as session:
        lease = get_lease(session, lease_id=lease_id)
        transition(session, lease=lease, to=S.CANCELLED, actor="U_REQUESTER", reason=None, now=now)
    with session_scope(engine) as session, pytest.raises(AlreadyDecided, match="withdrawn by its requester at"):
        decide(session, lease=get_lease(session, lease_id=lease_id), approver="U_A",
               approve=True, reason=None, now=now)


def test_approvers_clicking_at_once_make_one_decision(db_url, engine, make_lease, now):
    lease_id = _pending(engine, make_lease, now)
    approvers = [f"U_APPROVER_{i}" for i in range(6)]
    racing = make_engine(db_url, pool_size=len(approvers))
    start = threading.Barrier(len(approvers))

    def click(approver: str) -> str:
        start.wait()
        try:
            with session_scope(racing) as session:
                lease = get_lease(session, lease_id=lease_id)
                decide(session, lease=lease, approver=approver, approve=True, reason=None, now=now)
        except AlreadyDecided:
            return "refused"
        return "decided"

    try:
        with ThreadPoolExecutor(len(approvers)) as pool:
            outcomes = list(pool.map(click, approvers))
    finally:
        racing.dispose()
    assert sorted(outcomes) == ["decided"] + ["refused"] * (len(approvers) - 1)
    state, _, _, decisions, events = _snapshot(engine, lease_id)
    assert (state, decisions, events) == (S.APPROVED, 1, 3)


def test_unapproved_requests_expire_after_the_timeout(engine, make_lease, now):
    timeout = timedelta(hours=48)
    old = _pending(engine, make_lease, now)
    young = _pending(engine, make_lease, now + timedelta(hours=1))
    decided = _pending(engine, make_lease, now)
    with session_scope(engine) as session:
        decide(session, lease=get_lease(session, lease_id=decided), approver="U_A",
               approve=True, reason=None, now=now)

    with session_scope(engine) as session:
        assert expire_unapproved(session, now=now + timeout - timedelta(seconds=1), timeout=timeout) == []
    with session_scope(engine) as session:
        expired = expire_unapproved(session, now=now + timeout, timeout=timeout, actor="sweeper")
        assert [lease.id for lease in expired] == [old]
    with session_scope(engine) as session:
        assert get_lease(session, lease_id=old).state is S.EXPIRED_UNAPPROVED
        assert get_lease(session, lease_id=young).state is S.PENDING_APPROVAL
        assert get_lease(session, lease_id=decided).state is S.APPROVED
        event = audit_trail(session, lease_id=old)[-1]
        assert (event.actor, event.reason) == ("sweeper", "no decision within 2d")
    with session_scope(engine) as session:
        # A second sweep finds nothing left to do, and an expired request cannot be approved.
        assert expire_unapproved(session, now=now + timeout, timeout=timeout) == []
        with pytest.raises(AlreadyDecided, match="expired without a decision at"):
            decide(session, lease=get_lease(session, lease_id=old), approver="U_A",
                   approve=True, reason=None, now=now + timeout)
