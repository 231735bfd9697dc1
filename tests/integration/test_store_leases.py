"""Recording requests: one live lease per namespace, duplicate submissions, time in UTC."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy.exc import IntegrityError, StatementError
from sqlmodel import func, select

from leases.errors import DomainError, NamespaceTaken
from leases.lifecycle import LeaseState, transition
from leases.models import Lease, Team
from leases.records import find_live_lease, get_lease
from leases.store import session_scope

S = LeaseState


def test_second_live_lease_for_a_namespace_is_refused(engine, make_lease):
    with session_scope(engine) as session:
        first = make_lease(session, namespace="vision-ft", requester="U1")
    with session_scope(engine) as session, pytest.raises(NamespaceTaken) as refused:
        make_lease(session, namespace="vision-ft", requester="U2")
    assert refused.value.field == "namespace"
    assert "vision-ft" in refused.value.message and first.id in refused.value.message
    with session_scope(engine) as session:
        assert session.exec(select(func.count()).select_from(Lease)).one() == 1


def test_namespace_is_free_again_once_the_lease_is_over(engine, make_lease, now):
    with session_scope(engine) as session:
        first = make_lease(session, namespace="vision-ft")
        transition(session, lease=first, to=S.CANCELLED, actor="U", reason=None, now=now)
    with session_scope(engine) as session:
        second = make_lease(session, namespace="vision-ft")
        assert find_live_lease(session, cluster="gpu-a", namespace="vision-ft").id == second.id


def test_same_name_on_another_cluster_is_another_namespace(engine, make_lease):
    with session_scope(engine) as session:
        make_lease(session, namespace="vision-ft", cluster="gpu-a")
        make_lease(session, namespace="vision-ft", cluster="gpu-b")


def test_database_itself_refuses_a_second_live_lease(engine, make_lease, now):
    # Bypass create_lease's friendly check: the partial unique index must hold on its own,
    # which is what stops two concurrent requests from both passing that check.
    with session_scope(engine) as session:
        make_lease(session, namespace="vision-ft")
    with pytest.raises(IntegrityError), session_scope(engine) as session:
        session.add(
            Lease(
                namespace="vision-ft", cluster="gpu-a", requester="U9", team="vision",
                tier="h100-1g", units=1, duration_seconds=3600, created_at=now, updated_at=now,
                state=S.PENDING_APPROVAL,
            )
        )
        session.flush()
    with session_scope(engine) as session:
        session.add(
            Lease(
                namespace="vision-ft", cluster="gpu-a", requester="U9", team="vision",
                tier="h100-1g", units=1, duration_seconds=3600, created_at=now, updated_at=now,
                state=S.DENIED,
            )
        )


def test_a_terminal_lease_cannot_come_back_to_life_over_a_live_one(engine, make_lease, now):
    with session_scope(engine) as session:
        old = make_lease(session, namespace="vision-ft")
        transition(session, lease=old, to=S.CANCELLED, actor="U", reason=None, now=now)
        make_lease(session, namespace="vision-ft")
    with pytest.raises(IntegrityError), session_scope(engine) as session:
        stored = get_lease(session, lease_id=old.id)
        stored.state = S.REQUESTED  # not via the lifecycle; the index still refuses
        session.flush()


def test_duplicate_submission_returns_the_first_lease(engine, make_lease):
    with session_scope(engine) as session:
        first = make_lease(session, idempotency_key="view-123")
    with session_scope(engine) as session:
        again = make_lease(session, idempotency_key="view-123", namespace="other-name")
        assert again.id == first.id
        assert session.exec(select(func.count()).select_from(Lease)).one() == 1


def test_request_creates_its_team_once(engine, make_lease, now):
    with session_scope(engine) as session:
        make_lease(session, team="nlp")
        make_lease(session, team="nlp")
    with session_scope(engine) as session:
        assert [t.name for t in session.exec(select(Team)).all()] == ["nlp"]
        assert session.get(Team, "nlp").created_at == now


@pytest.mark.parametrize(
    ("overrides", "field"),
    [({"units": 0}, "units"), ({"duration": timedelta(0)}, "duration")],
    ids=["no-units", "no-duration"],
)
def test_request_needs_units_and_a_duration(engine, make_lease, overrides, field):
    with session_scope(engine) as session, pytest.raises(DomainError) as refused:
        make_lease(session, **overrides)
    assert refused.value.field == field


def test_times_come_back_as_aware_utc(engine, make_lease):
    paris = timezone(timedelta(hours=1))
    local = datetime(2026, 3, 2, 10, 30, tzinfo=paris)
    with session_scope(engine) as session:
        lease = make_lease(session, now=local)
    with session_scope(engine) as session:
        stored = get_lease(session, lease_id=lease.id)
        assert stored.created_at == datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
        assert stored.created_at.tzinfo is UTC
        # Comparisons in SQL see the same instant whichever zone the bound value is in.
        found = session.exec(select(Lease).where(Lease.created_at == local)).one()
        assert found.id == lease.id


def test_naive_datetimes_are_refused(engine, make_lease):
    with pytest.raises(StatementError, match="naive datetime"), session_scope(engine) as session:
        make_lease(session, now=datetime(2026, 3, 2, 9, 30))


def test_json_and_defaults_round_trip(engine, make_lease):
    with session_scope(engine) as session:
        lease = make_lease(session, fallback_tiers=["h100-shared", "h100-3g"], priority=5)
    with session_scope(engine) as session:
        stored = get_lease(session, lease_id=lease.id)
        assert stored.fallback_tiers == ["h100-shared", "h100-3g"]
        assert (stored.priority, stored.version, stored.extensions) == (5, 1, 0)
        assert len(stored.id) == 32 and stored.id == stored.id.lower()
