"""Reserving pool capacity: never beyond capacity, also with many workers at once."""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlmodel import select

from leases.errors import CapacityExceeded, DomainError
from leases.lifecycle import LeaseState, transition
from leases.models import AuditEvent, Reservation
from leases.records import get_lease
from leases.reservations import (
    PoolUsage,
    held_reservation,
    live_leases_of,
    live_namespaces,
    pool_usage,
    release,
    reserve,
    set_pool_capacity,
    team_usage,
)
from leases.store import make_engine, session_scope

S = LeaseState


def test_reserve_within_capacity_and_refuse_beyond(engine, make_lease, now):
    with session_scope(engine) as session:
        set_pool_capacity(session, cluster="gpu-a", tier="h100-1g", units=7, now=now)
        first = make_lease(session, units=4)
        reserve(session, lease=first, now=now)
        second = make_lease(session, units=4)
        with pytest.raises(CapacityExceeded, match="3 of 7 units free; 4 asked"):
            reserve(session, lease=second, now=now)
        third = make_lease(session, units=3)
        reserve(session, lease=third, now=now)
    with session_scope(engine) as session:
        assert pool_usage(session) == [PoolUsage("gpu-a", "h100-1g", capacity=7, reserved=7)]
        assert pool_usage(session)[0].free == 0


def test_reserve_twice_returns_the_same_reservation(engine, make_lease, now):
    with session_scope(engine) as session:
        set_pool_capacity(session, cluster="gpu-a", tier="h100-1g", units=2, now=now)
        lease = make_lease(session, units=2)
        first = reserve(session, lease=lease, now=now)
    with session_scope(engine) as session:
        lease = get_lease(session, lease_id=lease.id)
        again = reserve(session, lease=lease, now=now + timedelta(minutes=1))
        assert again.id == first.id
        assert len(session.exec(select(Reservation)).all()) == 1


def test_release_returns_units_and_is_idempotent(engine, make_lease, now):
    later = now + timedelta(hours=2)
    with session_scope(engine) as session:
        set_pool_capacity(session, cluster="gpu-a", tier="h100-1g", units=2, now=now)
        lease = make_lease(session, units=2)
        reserve(session, lease=lease, now=now)
    with session_scope(engine) as session:
        lease = get_lease(session, lease_id=lease.id)
        released = release(session, lease=lease, now=later)
        assert released.released_at == later
        assert release(session, lease=lease, now=later + timedelta(hours=1)) is None
        assert held_reservation(session, lease_id=lease.id) is None
        assert pool_usage(session)[0].reserved == 0
        # Released units can be reserved again, by another lease or the same one.
        other = make_lease(session, units=2)
        reserve(session, lease=other, now=later)


def test_no_pool_means_no_capacity(engine, make_lease, now):
    with session_scope(engine) as session:
        lease = make_lease(session, tier="h100-full")
        with pytest.raises(CapacityExceeded, match="no h100-full capacity on gpu-a") as refused:
            reserve(session, lease=lease, now=now)
    assert refused.value.field == "tier"


def test_ended_lease_cannot_reserve(engine, make_lease, now):
    with session_scope(engine) as session:
        set_pool_capacity(session, cluster="gpu-a", tier="h100-1g", units=2, now=now)
        lease = make_lease(session)
        transition(session, lease=lease, to=S.CANCELLED, actor="U", reason=None, now=now)
        with pytest.raises(DomainError, match="cancelled"):
            reserve(session, lease=lease, now=now)


def test_pool_cannot_shrink_below_what_is_reserved_unless_forced(engine, make_lease, now):
    with session_scope(engine) as session:
        set_pool_capacity(session, cluster="gpu-a", tier="h100-1g", units=4, now=now)
        reserve(session, lease=make_lease(session, units=3), now=now)
        with pytest.raises(CapacityExceeded, match="3 units reserved"):
            set_pool_capacity(session, cluster="gpu-a", tier="h100-1g", units=2, now=now)
        set_pool_capacity(session, cluster="gpu-a", tier="h100-1g", units=3, now=now)
        set_pool_capacity(session, cluster="gpu-a", tier="h100-1g", units=3, now=now)  # no change
        set_pool_capacity(
            session, cluster="gpu-a", tier="h100-1g", units=1, now=now, actor="U_ADMIN", force=True
        )
        assert pool_usage(session) == [PoolUsage("gpu-a", "h100-1g", capacity=1, reserved=3)]
        assert pool_usage(session)[0].free == 0
        changes = session.exec(select(AuditEvent).where(AuditEvent.action == "pool.capacity_set"))
        assert [(e.data["from"], e.data["to"]) for e in changes] == [(None, 4), (4, 3), (3, 1)]


def test_usage_views(engine, make_lease, now):
    with session_scope(engine) as session:
        set_pool_capacity(session, cluster="gpu-a", tier="h100-1g", units=8, now=now)
        set_pool_capacity(session, cluster="gpu-a", tier="h100-3g", units=2, now=now)
        set_pool_capacity(session, cluster="gpu-b", tier="h100-1g", units=4, now=now)
        a = make_lease(session, team="vision", tier="h100-1g", units=2, requester="U1",
                       namespace="a1")
        reserve(session, lease=a, now=now)
        make_lease(session, team="vision", tier="h100-1g", units=1, requester="U1", namespace="a2")
        make_lease(session, team="vision", tier="h100-3g", units=1, requester="U2", namespace="a3")
        gone = make_lease(session, team="vision", tier="h100-3g", units=1, requester="U1",
                          namespace="a4")
        transition(session, lease=gone, to=S.DENIED, actor="U9", reason="no", now=now)
        make_lease(session, team="nlp", tier="h100-1g", units=4, requester="U3", namespace="b1",
                   cluster="gpu-b")

        assert team_usage(session, team="vision") == {"h100-1g": 3, "h100-3g": 1}
        assert team_usage(session, team="nobody") == {}
        assert {lease.namespace for lease in live_leases_of(session, requester="U1")} == {"a1", "a2"}
        assert live_namespaces(session, cluster="gpu-a") == {"a1", "a2", "a3"}
        assert live_namespaces(session) == {"a1", "a2", "a3", "b1"}
        assert pool_usage(session) == [
            PoolUsage("gpu-a", "h100-1g", capacity=8, reserved=2),
            PoolUsage("gpu-a", "h100-3g", capacity=2, reserved=0),
            PoolUsage("gpu-b", "h100-1g", capacity=4, reserved=0),
        ]
        assert [u.tier for u in pool_usage(session, cluster="gpu-b")] == ["h100-1g"]


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    capacity=st.integers(min_value=0, max_value=8),
    ops=st.lists(st.tuples(st.booleans(), st.integers(min_value=0, max_value=5),
                           st.integers(min_value=1, max_value=4)), max_size=15),
)
def test_reserved_never_exceeds_capacity(engine, make_lease, now, capacity, ops):
    # One database serves every example: each gets a cluster of its own (an id() could be
    # reused by a later example and meet the reservations an earlier one left).
    cluster = f"c-{uuid.uuid4().hex}"
    with session_scope(engine) as session:
        set_pool_capacity(session, cluster=cluster, tier="t", units=capacity, now=now)
        leases = [make_lease(session, cluster=cluster, tier="t", units=u) for _, _, u in ops]
    held: dict[str, int] = {}
    for is_reserve, pick, _ in ops:
        lease = leases[pick % len(leases)]
        with session_scope(engine) as session:
            lease = get_lease(session, lease_id=lease.id)
            if is_reserve:
                try:
                    reserve(session, lease=lease, now=now)
                    held[lease.id] = lease.units
                except CapacityExceeded:
                    assert sum(held.values()) + lease.units > capacity
            else:
                release(session, lease=lease, now=now)
                held.pop(lease.id, None)
        with session_scope(engine) as session:
            (usage,) = pool_usage(session, cluster=cluster)
            assert usage.reserved == sum(held.values()) <= capacity


@pytest.mark.timeout(90)
def test_twenty_workers_race_for_the_last_units(db_url, engine, make_lease, now):
    workers, capacity, taken = 20, 10, 8
    # Each worker has its own connection and session; a barrier releases them together.
    racing = make_engine(db_url, pool_size=workers)
    start = threading.Barrier(workers)

    def worker(lease_id: str) -> bool:
        start.wait()
        try:
            with session_scope(racing) as session:
                reserve(session, lease=get_lease(session, lease_id=lease_id), now=now)
        except CapacityExceeded:
            return False
        return True

    try:
        # Several rounds: one lucky interleaving must not hide a missing lock.
        for cluster in ("race-1", "race-2", "race-3", "race-4", "race-5"):
            with session_scope(engine) as session:
                set_pool_capacity(session, cluster=cluster, tier="t", units=capacity, now=now)
                reserve(session, lease=make_lease(session, cluster=cluster, tier="t",
                                                  units=taken), now=now)
                ids = [make_lease(session, cluster=cluster, tier="t").id for _ in range(workers)]
            with ThreadPoolExecutor(workers) as pool:
                granted = list(pool.map(worker, ids))
            assert granted.count(True) == capacity - taken, cluster
            with session_scope(engine) as session:
                (usage,) = pool_usage(session, cluster=cluster)
                assert (usage.capacity, usage.reserved, usage.free) == (capacity, capacity, 0)
                held = session.exec(select(Reservation).where(Reservation.cluster == cluster))
                assert len(held.all()) == 1 + capacity - taken
    finally:
        racing.dispose()


def test_two_transactions_creating_the_same_pool_both_succeed(engine, now):
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite serialises writing transactions from their start: no interleaving")
    import threading

    from sqlalchemy import text

    from tests.integration.locks import wait_until_blocked_by

    errors: list[BaseException] = []

    def second() -> None:
        try:
            with session_scope(engine) as session:
                set_pool_capacity(session, cluster="gpu-a", tier="h100-1g", units=14, now=now)
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    with session_scope(engine) as session:
        set_pool_capacity(session, cluster="gpu-a", tier="h100-1g", units=7, now=now)
        pid = session.connection().execute(text("SELECT pg_backend_pid()")).scalar_one()
        other = threading.Thread(target=second)
        other.start()
        wait_until_blocked_by(engine, pid)  # its insert waits for this one's
    other.join(30)
    assert not other.is_alive() and errors == []
    with session_scope(engine) as session:
        assert pool_usage(session) == [PoolUsage("gpu-a", "h100-1g", capacity=14, reserved=0)]
        changes = session.exec(select(AuditEvent).where(AuditEvent.action == "pool.capacity_set"))
        assert [(e.data["from"], e.data["to"]) for e in changes] == [(None, 7), (7, 14)]
