"""Taking a fallback tier is checked against the team's quota for that tier, also when two
leases of one team take it at the same time."""

from __future__ import annotations

import contextlib
import threading

import pytest

from leases.models import Lease
from leases.reservations import team_usage
from leases.states import LeaseState
from leases.store import session_scope
from tests.integration.workflows.conftest import roomy_policy
from workflows import api
from workflows.steps import requests


def _policy():
    """Room for everything, but ml-research may hold only 2 units of h100-shared."""
    policy = roomy_policy()
    teams = []
    for team in policy.teams:
        if team.name == "ml-research":
            quota = team.quota.model_copy(update={"tiers": {**team.quota.tiers, "h100-shared": 2}})
            team = team.model_copy(update={"quota": quota})
        teams.append(team)
    return policy.model_copy(update={"teams": teams})


def _waitlisted(rt, namespace: str) -> str:
    """Record a waitlisted lease of 2× h100-1g offered h100-shared; return its id."""
    now = rt.now()
    with session_scope(rt.engine) as session:
        lease = Lease(
            namespace=namespace, cluster="sandbox", requester="U0ALICE", team="ml-research", tier="h100-1g",
            units=2, duration_seconds=3600, state=LeaseState.WAITLISTED, created_at=now, updated_at=now,
            decided_at=now, fallback_tiers=["h100-shared"],
        )
        session.add(lease)
        session.flush()
        return lease.id


def test_a_second_fallback_past_the_quota_is_refused(make_runtime):
    rt = make_runtime(policy=_policy())
    first, second = _waitlisted(rt, "a"), _waitlisted(rt, "b")
    assert api.accept_fallback(lease_id=first, tier="h100-shared", actor="U0ALICE") == "h100-shared"
    with pytest.raises(requests.RequestRefused):
        api.accept_fallback(lease_id=second, tier="h100-shared", actor="U0ALICE")


def test_two_fallbacks_at_once_do_not_both_pass_the_quota(make_runtime, monkeypatch):
    rt = make_runtime(policy=_policy())
    leases = [_waitlisted(rt, "a"), _waitlisted(rt, "b")]
    both_checked = threading.Barrier(2)
    check = requests.fallback_refusal

    def check_then_wait(session, rt_, lease, tier):
        refused = check(session, rt_, lease, tier)
        # Each waits (a while) for the other to have checked too before committing. With the
        # team's row held the other cannot check yet: the wait times out and they go in turn.
        with contextlib.suppress(threading.BrokenBarrierError):
            both_checked.wait(timeout=2)
        return refused

    monkeypatch.setattr(requests, "fallback_refusal", check_then_wait)
    outcomes: list[object] = []

    def accept(lease_id: str) -> None:
        try:
            outcomes.append(api.accept_fallback(lease_id=lease_id, tier="h100-shared", actor="U0ALICE"))
        except Exception as exc:  # noqa: BLE001 - the outcome is what is checked
            outcomes.append(exc)

    threads = [threading.Thread(target=accept, args=(lease_id,)) for lease_id in leases]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    with session_scope(rt.engine) as session:
        used = team_usage(session, team="ml-research")
    assert used.get("h100-shared", 0) <= 2, f"ml-research holds more h100-shared than its quota: {used}"
    assert sorted(type(o).__name__ for o in outcomes) == ["RequestRefused", "str"], outcomes
