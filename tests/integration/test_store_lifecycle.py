"""Lease transitions on a real database: allowed moves, refusals, the audit trail, atomicity."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlmodel import Session, func, select

from leases.errors import DomainError, InvalidTransition, NotFound
from leases.lifecycle import (
    ALLOWED,
    TERMINAL_STATES,
    LeaseState,
    claim_warning,
    extend,
    transition,
)
from leases.models import AuditEvent, SentWarning
from leases.records import audit_trail, get_lease
from leases.store import session_scope

S = LeaseState
ALLOWED_PAIRS = sorted((a, b) for a, targets in ALLOWED.items() for b in targets)


class Boom(Exception):
    """Raised inside a transaction to make it roll back."""


def _force_state(session, lease, state):
    # Test set-up only: put a lease straight into a state without the lifecycle.
    lease.state = state
    session.flush()


def _events(session, lease_id):
    return session.exec(select(func.count()).where(AuditEvent.lease_id == lease_id)).one()


def test_new_request_is_requested_with_an_audit_event(engine, make_lease, now):
    with session_scope(engine) as session:
        lease = make_lease(session, requester="U1")
    with session_scope(engine) as session:
        trail = audit_trail(session, lease_id=lease.id)
        assert get_lease(session, lease_id=lease.id).state is S.REQUESTED
    assert [(e.action, e.from_state, e.to_state, e.actor) for e in trail] == [
        ("lease.requested", None, S.REQUESTED, "U1")
    ]
    assert trail[0].at == now


def test_every_allowed_transition_is_applied_and_audited(engine, make_lease, now):
    later = now + timedelta(minutes=5)
    with session_scope(engine) as session:
        for from_state, to_state in ALLOWED_PAIRS:
            lease = make_lease(session)
            _force_state(session, lease, from_state)
            event = transition(
                session, lease=lease, to=to_state, actor="U_ADMIN", reason="test", now=later
            )
            assert lease.state is to_state
            assert lease.updated_at == later
            assert (event.from_state, event.to_state) == (from_state, to_state)
            assert (event.actor, event.reason, event.at) == ("U_ADMIN", "test", later)
    with session_scope(engine) as session:
        stored = session.exec(select(AuditEvent).where(AuditEvent.action != "lease.requested"))
        pairs = sorted((e.from_state, e.to_state) for e in stored)
    assert pairs == ALLOWED_PAIRS


FORBIDDEN_SAMPLE = [
    (S.REQUESTED, S.ACTIVE),
    (S.REQUESTED, S.PLACING),
    (S.PENDING_APPROVAL, S.PROVISIONING),
    (S.APPROVED, S.ACTIVE),
    (S.APPROVED, S.DENIED),
    (S.PLACING, S.ACTIVE),
    (S.WAITLISTED, S.PROVISIONING),
    (S.PROVISIONING, S.CANCELLED),
    (S.ACTIVE, S.RECLAIMED),
    (S.ACTIVE, S.REQUESTED),
    (S.EXPIRING, S.EXPIRING),
    (S.RECLAIMING, S.ACTIVE),
    (S.RECLAIMED, S.ACTIVE),
    (S.DENIED, S.APPROVED),
    (S.CANCELLED, S.REQUESTED),
    (S.EXPIRED_UNAPPROVED, S.PENDING_APPROVAL),
    (S.FAILED, S.FAILED),
]


@pytest.mark.parametrize(("from_state", "to_state"), FORBIDDEN_SAMPLE, ids=str)
def test_forbidden_transition_changes_nothing(engine, make_lease, now, from_state, to_state):
    with session_scope(engine) as session:
        lease = make_lease(session)
        _force_state(session, lease, from_state)
    with session_scope(engine) as session:
        lease = get_lease(session, lease_id=lease.id)
        with pytest.raises(InvalidTransition) as refused:
            transition(session, lease=lease, to=to_state, actor="U", reason=None, now=now)
    assert str(from_state) in refused.value.message and str(to_state) in refused.value.message
    with session_scope(engine) as session:
        lease = get_lease(session, lease_id=lease.id)
        assert lease.state is from_state
        assert lease.version == 1
        assert _events(session, lease.id) == 1  # just the request


def test_rollback_leaves_neither_state_nor_event(engine, make_lease, now):
    with session_scope(engine) as session:
        lease_id = make_lease(session).id
    with pytest.raises(Boom), session_scope(engine) as session:
        lease = get_lease(session, lease_id=lease_id)
        transition(session, lease=lease, to=S.PENDING_APPROVAL, actor="U", reason="x", now=now)
        assert _events(session, lease_id) == 2  # written, in this transaction only
        raise Boom
    with session_scope(engine) as session:
        lease = get_lease(session, lease_id=lease_id)
        assert lease.state is S.REQUESTED
        assert _events(session, lease.id) == 1


def test_transition_checks_the_committed_state_not_a_stale_copy(engine, make_lease, now):
    with session_scope(engine) as session:
        lease = make_lease(session)
        transition(session, lease=lease, to=S.PENDING_APPROVAL, actor="U", reason=None, now=now)
    worker = Session(engine, expire_on_commit=False)
    try:
        stale = get_lease(worker, lease_id=lease.id)
        worker.commit()  # the copy stays in the worker's session, unexpired
        with session_scope(engine) as other:
            fresh = get_lease(other, lease_id=lease.id)
            transition(other, lease=fresh, to=S.DENIED, actor="U2", reason="no", now=now)
        assert stale.state is S.PENDING_APPROVAL
        with pytest.raises(InvalidTransition, match="from denied to approved"):
            transition(worker, lease=stale, to=S.APPROVED, actor="U3", reason=None, now=now)
    finally:
        worker.rollback()
        worker.close()


def test_changes_made_before_a_transition_are_kept(engine, make_lease, now):
    with session_scope(engine) as session:
        lease_id = make_lease(session).id
    with session_scope(engine) as session:
        lease = get_lease(session, lease_id=lease_id, lock=True)
        lease.step, lease.step_started_at = "notify_approvers", now
        transition(session, lease=lease, to=S.PENDING_APPROVAL, actor="wf", reason=None, now=now)
    with session_scope(engine) as session:
        lease = get_lease(session, lease_id=lease_id)
        assert (lease.state, lease.step, lease.step_started_at) == (
            S.PENDING_APPROVAL, "notify_approvers", now
        )
        assert lease.version == 2


def test_active_records_start_and_expiry_failed_records_why(engine, make_lease, now):
    with session_scope(engine) as session:
        lease = make_lease(session, duration=timedelta(hours=6))
        _force_state(session, lease, S.PROVISIONING)
        transition(session, lease=lease, to=S.ACTIVE, actor="worker", reason=None, now=now)
        assert (lease.active_at, lease.expires_at) == (now, now + timedelta(hours=6))
        other = make_lease(session)
        transition(session, lease=other, to=S.FAILED, actor="worker", reason="quota", now=now)
        assert other.failure_reason == "quota"
    with session_scope(engine) as session:
        lease = get_lease(session, lease_id=lease.id)
        assert lease.expires_at == now + timedelta(hours=6)
        assert lease.expires_at.tzinfo is not None and lease.expires_at.utcoffset() == timedelta(0)


def test_extend_pushes_expiry_counts_it_and_rearms_warnings(engine, make_lease, now):
    with session_scope(engine) as session:
        lease = make_lease(session, duration=timedelta(days=1))
        _force_state(session, lease, S.PROVISIONING)
        transition(session, lease=lease, to=S.ACTIVE, actor="worker", reason=None, now=now)
        transition(session, lease=lease, to=S.EXPIRING, actor="sweeper", reason=None, now=now)
        assert claim_warning(session, lease=lease, offset_seconds=3600, now=now)
        assert not claim_warning(session, lease=lease, offset_seconds=3600, now=now)
    with session_scope(engine) as session:
        lease = get_lease(session, lease_id=lease.id)
        event = extend(session, lease=lease, by=timedelta(days=3), actor="U_REQUESTER", now=now)
    assert event.action == "lease.extended"
    assert (event.from_state, event.to_state) == (S.EXPIRING, S.ACTIVE)
    with session_scope(engine) as session:
        lease = get_lease(session, lease_id=lease.id)
        assert lease.state is S.ACTIVE
        assert lease.expires_at == now + timedelta(days=4)
        assert (lease.extensions, lease.extended_seconds) == (1, 3 * 86400)
        assert session.exec(select(SentWarning)).all() == []
        assert claim_warning(session, lease=lease, offset_seconds=3600, now=now)


@pytest.mark.parametrize("state", sorted(set(S) - {S.ACTIVE, S.EXPIRING}))
def test_extend_is_refused_unless_active_or_expiring(engine, make_lease, now, state):
    # PROVISIONING may become ACTIVE, but only when its namespace is ready, never by an extension.
    with session_scope(engine) as session:
        lease = make_lease(session)
        _force_state(session, lease, state)
        before = _events(session, lease.id)
        with pytest.raises(InvalidTransition, match=f"is {state}; only an active or expiring lease"):
            extend(session, lease=lease, by=timedelta(days=1), actor="U", now=now)
        assert lease.state is state
        assert (lease.extensions, lease.extended_seconds) == (0, 0)
        assert _events(session, lease.id) == before
        with pytest.raises(DomainError, match="positive"):
            extend(session, lease=lease, by=timedelta(0), actor="U", now=now)


@st.composite
def walks(draw):
    """A sequence of target states, each either allowed from the state before or not."""
    steps, state = [], S.REQUESTED
    for _ in range(draw(st.integers(min_value=1, max_value=12))):
        allowed = sorted(ALLOWED[state])
        if allowed and draw(st.booleans()):
            target = draw(st.sampled_from(allowed))
        else:
            target = draw(st.sampled_from(list(LeaseState)))
        steps.append(target)
        if target in ALLOWED[state]:
            state = target
    return steps


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=walks())
def test_random_walk_keeps_the_audit_trail_equal_to_the_history(engine, make_lease, now, steps):
    with session_scope(engine) as session:
        lease = make_lease(session)
    history = [(None, S.REQUESTED)]
    state = S.REQUESTED
    for i, target in enumerate(steps):
        at = now + timedelta(minutes=i + 1)
        try:
            with session_scope(engine) as session:
                current = get_lease(session, lease_id=lease.id, lock=True)
                transition(session, lease=current, to=target, actor="walker", reason=None, now=at)
        except InvalidTransition:
            assert target not in ALLOWED[state]
        else:
            assert target in ALLOWED[state]
            history.append((state, target))
            state = target
    with session_scope(engine) as session:
        stored = get_lease(session, lease_id=lease.id)
        trail = audit_trail(session, lease_id=lease.id)
    assert stored.state is state
    assert stored.version == len(history)
    assert [(e.from_state, e.to_state) for e in trail] == history
    # Each event starts where the previous one ended: no gap, no change without an event.
    assert all(a.to_state == b.from_state for a, b in zip(trail, trail[1:], strict=False))
    if state in TERMINAL_STATES:
        assert not ALLOWED[state]


def test_missing_lease_is_not_found(engine):
    with session_scope(engine) as session, pytest.raises(NotFound):
        get_lease(session, lease_id="0" * 32)
