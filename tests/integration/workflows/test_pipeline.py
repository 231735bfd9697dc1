"""The pipeline from request to reclaim, step by step, on the store and the sandbox cluster."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import select

from leases.errors import AlreadyDecided, NotAuthorised
from leases.models import AuditEvent, Lease, OutboxMessage, Reservation
from leases.records import get_lease
from leases.reservations import held_reservation
from leases.states import LeaseState
from leases.store import session_scope
from tests.integration.workflows.conftest import roomy_policy
from workflows import api
from workflows.steps.requests import RequestRefused, SubmitRequest


def request(**kw) -> SubmitRequest:
    base = dict(
        requester="U0ALICE",
        team="ml-research",
        tier="h100-1g",
        units=1,
        namespace="alice-nb",
        duration=timedelta(hours=8),
        reason="fine-tuning",
        requester_email="alice@example.com",
    )
    base.update(kw)
    return SubmitRequest(**base)


def approved(rt, approver: str, *requests: SubmitRequest, clock=None) -> list[str]:
    """Submit each request, approve it as `approver` (unless the policy approved it already)
    and run what follows; return the lease ids. `clock`: advanced a minute after each, so
    that the waitlist has an order."""
    ids = []
    for req in requests:
        s = api.submit(req)
        if s.approval != "auto":
            api.decide(lease_id=s.lease_id, approver=approver, approve=True)
        rt.queue.drain()
        ids.append(s.lease_id)
        if clock is not None:
            clock.advance(timedelta(minutes=1))
    return ids


def state_of(rt, lease_id: str) -> LeaseState:
    with session_scope(rt.engine) as session:
        return get_lease(session, lease_id=lease_id).state


def kinds(rt, target: str | None = None) -> list[str]:
    return rt.notifier.kinds(target)


def test_auto_approved_request_becomes_active_with_its_bundle(make_runtime, kube):
    rt = make_runtime()
    submitted = api.submit(request())
    assert (submitted.approval, submitted.rule) == ("auto", "small-and-short")
    rt.queue.drain()
    assert state_of(rt, submitted.lease_id) is LeaseState.ACTIVE
    ns = kube.get("namespaces", "alice-nb")
    assert ns["metadata"]["labels"]["gpulease.io/lease"] == submitted.lease_id
    assert ns["metadata"]["labels"]["gpulease.io/tier"] == "h100-1g"
    quotas = kube.list("resourcequotas", namespace="alice-nb")
    assert quotas[0]["spec"]["hard"]["requests.nvidia.com/gpu"] == "1"
    assert kinds(rt, "requester") == ["lease.approved", "lease.active"]
    active = rt.notifier.sent[-1].notice
    assert "kubectl config set-context --current --namespace=alice-nb" in active.data["kubectl"]
    with session_scope(rt.engine) as session:
        lease = session.get(Lease, submitted.lease_id)
        assert lease.thread_ts is not None  # every later message goes to this thread
        assert held_reservation(session, lease_id=lease.id).units == 1


def test_approval_by_an_approver_then_active(make_runtime):
    rt = make_runtime()
    submitted = api.submit(request(tier="h100-3g", duration=timedelta(days=2)))
    assert submitted.approval == "required"
    rt.queue.drain()
    assert kinds(rt, "approval_card") == ["approval.requested"]
    card = rt.notifier.sent[[s.target for s in rt.notifier.sent].index("approval_card")].notice
    assert card.data["team_quota"] == 4 and card.data["team_used"] == 1
    with pytest.raises(NotAuthorised, match="not an approver"):
        api.decide(lease_id=submitted.lease_id, approver="U0BOB", approve=True)
    with pytest.raises(NotAuthorised, match="own request"):
        api.decide(
            lease_id=submitted.lease_id,
            approver="U0ALICE",
            approver_groups=frozenset({"S0GPUAPPROVERS"}),
            approve=True,
        )
    api.decide(lease_id=submitted.lease_id, approver="U0APPROVER1", approve=True)
    with pytest.raises(AlreadyDecided):
        api.decide(lease_id=submitted.lease_id, approver="U0APPROVER1", approve=True)
    rt.queue.drain()
    assert state_of(rt, submitted.lease_id) is LeaseState.ACTIVE
    assert kinds(rt, "approval_update") == ["approval.approved"]
    assert kinds(rt, "requester") == ["lease.pending_approval", "lease.approved", "lease.active"]


def test_deny_with_reason(make_runtime, kube):
    rt = make_runtime()
    submitted = api.submit(request(tier="h100-3g", duration=timedelta(days=2)))
    with pytest.raises(Exception, match="say why"):
        api.decide(lease_id=submitted.lease_id, approver="U0APPROVER1", approve=False)
    api.decide(lease_id=submitted.lease_id, approver="U0APPROVER1", approve=False, reason="use h100-1g")
    rt.queue.drain()
    assert state_of(rt, submitted.lease_id) is LeaseState.DENIED
    assert kube.get("namespaces", "alice-nb") is None
    assert rt.notifier.sent[-1].notice.text.endswith("denied alice-nb: use h100-1g")


def test_refused_request_names_fields_and_stores_nothing(make_runtime):
    rt = make_runtime()
    with pytest.raises(RequestRefused) as refused:
        api.submit(request(namespace="kube-x", units=9))
    assert {e.field for e in refused.value.errors} == {"namespace", "units"}
    with session_scope(rt.engine) as session:
        assert session.exec(select(Lease)).all() == []


def test_duplicate_submission_is_recorded_once(make_runtime):
    rt = make_runtime()
    first = api.submit(request(idempotency_key="slack-view-1"))
    again = api.submit(request(idempotency_key="slack-view-1"))
    assert again.duplicate and again.lease_id == first.lease_id
    rt.queue.drain()
    with session_scope(rt.engine) as session:
        assert len(session.exec(select(Lease)).all()) == 1


def test_shortage_waitlists_and_reclaim_places_the_waiting_request(make_runtime):
    rt = make_runtime(policy=roomy_policy(), nodes=(("h100-3g-0", "h100-3g", 2),))  # 4 units of h100-3g
    leases = approved(
        rt,
        "U0APPROVER1",
        *(request(tier="h100-3g", units=2, namespace=name, duration=timedelta(days=1)) for name in ("a-0", "a-1", "a-2")),
    )
    assert [state_of(rt, x) for x in leases] == [LeaseState.ACTIVE, LeaseState.ACTIVE, LeaseState.WAITLISTED]
    assert "lease.waitlisted" in kinds(rt, "requester")
    api.release(namespace="a-0", actor="U0ALICE")
    rt.queue.drain()
    assert state_of(rt, leases[0]) is LeaseState.RECLAIMED
    assert state_of(rt, leases[2]) is LeaseState.ACTIVE


def test_expiry_warnings_once_each_then_reclaim_returns_capacity(make_runtime, clock, kube):
    rt = make_runtime()
    s = api.submit(request(duration=timedelta(hours=20)))
    rt.queue.drain()
    from workflows.sweeps import sweep

    # 20h lease: the 24h warning is due at once (tightest offset reached), then 1h, each once.
    report = sweep(rt)
    assert [o for _, o in report.warned] == [86400]
    assert sweep(rt).warned == []
    clock.advance(timedelta(hours=19, minutes=1))
    assert [o for _, o in sweep(rt).warned] == [3600]
    assert sweep(rt).warned == []
    assert state_of(rt, s.lease_id) is LeaseState.EXPIRING
    clock.advance(timedelta(hours=1))
    assert sweep(rt).expired == [s.lease_id]
    rt.queue.drain()
    assert state_of(rt, s.lease_id) is LeaseState.RECLAIMED
    assert kube.get("namespaces", "alice-nb") is None
    with session_scope(rt.engine) as session:
        assert session.exec(select(Reservation).where(Reservation.released_at.is_(None))).all() == []
    assert kinds(rt, "requester").count("lease.expiry_warning") == 2
    receipt = rt.notifier.sent[-1].notice
    assert receipt.kind == "lease.reclaimed" and receipt.data["gpu_hours"] == round(20 / 7, 2)


def test_extend_within_caps_and_past_them(make_runtime, clock):
    rt = make_runtime()
    s = api.submit(request(duration=timedelta(hours=8)))
    rt.queue.drain()
    out = api.extend(namespace="alice-nb", actor="U0ALICE", by=timedelta(days=1))
    assert out.outcome == "extended"
    with pytest.raises(NotAuthorised):
        api.extend(namespace="alice-nb", actor="U0BOB", by=timedelta(days=1))
    api.extend(namespace="alice-nb", actor="U0ALICE", by=timedelta(days=1))
    third = api.extend(namespace="alice-nb", actor="U0ALICE", by=timedelta(days=1))
    assert third.outcome == "approval-required"  # max_extensions is 2
    rt.queue.drain()
    assert kinds(rt, "approval_card")[-1] == "extension.requested"
    done = api.decide_extension(lease_id=s.lease_id, approver="U0APPROVER1", by=timedelta(days=1))
    assert done.outcome == "extended"
    with session_scope(rt.engine) as session:
        lease = session.get(Lease, s.lease_id)
        assert lease.extensions == 3
        assert lease.expires_at - lease.active_at == timedelta(hours=8 + 72)


def test_approval_timeout_expires_the_request(make_runtime, clock):
    rt = make_runtime()
    s = api.submit(request(tier="h100-3g", duration=timedelta(days=2)))
    from workflows.sweeps import sweep

    assert sweep(rt).expired_unapproved == []
    clock.advance(timedelta(hours=24))
    assert sweep(rt).expired_unapproved == [s.lease_id]
    rt.queue.drain()
    assert state_of(rt, s.lease_id) is LeaseState.EXPIRED_UNAPPROVED
    assert "approval.expired" in kinds(rt, "approval_update")


def test_permanent_403_fails_after_compensation(make_runtime, kube):
    rt = make_runtime()
    kube.deny(verb="patch", resource="rolebindings")
    s = api.submit(request())
    rt.queue.drain()
    assert state_of(rt, s.lease_id) is LeaseState.FAILED
    assert kube.get("namespaces", "alice-nb") is None
    with session_scope(rt.engine) as session:
        assert held_reservation(session, lease_id=s.lease_id) is None
        lease = session.get(Lease, s.lease_id)
        assert "403" in lease.failure_reason or "forbidden" in lease.failure_reason.lower()
    assert kinds(rt, "requester")[-1] == "lease.failed"


def test_notifications_are_sent_once_even_if_steps_repeat(make_runtime):
    rt = make_runtime()
    s = api.submit(request())
    rt.queue.drain()
    from workflows.steps import placing, provisioning

    placing.place_lease(rt, s.lease_id)
    provisioning.provision(rt, s.lease_id)
    rt.queue.drain()
    with session_scope(rt.engine) as session:
        keys = session.exec(select(OutboxMessage.key)).all()
        assert len(keys) == len(set(keys))
        events = session.exec(select(AuditEvent.action).where(AuditEvent.lease_id == s.lease_id)).all()
        assert events.count("lease.active") == 1
    assert kinds(rt, "requester") == ["lease.approved", "lease.active"]


def test_expiry_frees_capacity_for_the_waitlist_with_an_injected_clock(make_runtime, clock):
    from workflows.sweeps import sweep

    rt = make_runtime(policy=roomy_policy(), nodes=(("h100-full-0", "h100-full", 1),))  # one whole GPU
    first = api.submit(request(tier="h100-full", namespace="first", duration=timedelta(hours=2)))
    second = api.submit(request(tier="h100-full", namespace="second", duration=timedelta(hours=2)))
    for s in (first, second):
        api.decide(lease_id=s.lease_id, approver="U0APPROVER2", approve=True)
    rt.queue.drain()
    assert (state_of(rt, first.lease_id), state_of(rt, second.lease_id)) == (LeaseState.ACTIVE, LeaseState.WAITLISTED)
    clock.advance(timedelta(hours=2))
    assert sweep(rt).expired == [first.lease_id]
    rt.queue.drain()
    assert state_of(rt, first.lease_id) is LeaseState.RECLAIMED
    assert state_of(rt, second.lease_id) is LeaseState.ACTIVE


def test_reclaim_exports_the_namespace_objects_first(make_runtime, tmp_path):
    import json

    rt = make_runtime(export_dir=tmp_path / "exports")
    s = api.submit(request())
    rt.queue.drain()
    api.release(namespace="alice-nb", actor="U0ALICE")
    rt.queue.drain()
    assert state_of(rt, s.lease_id) is LeaseState.RECLAIMED
    [export] = list((tmp_path / "exports").glob("*.json"))
    saved = json.loads(export.read_text())
    assert saved["lease"] == s.lease_id
    kinds = sorted(item["kind"] for item in saved["items"])
    # Two quotas: the lease's own, and the one keeping critical priority classes out.
    assert kinds == ["LimitRange", "Namespace", "NetworkPolicy", "ResourceQuota", "ResourceQuota", "RoleBinding"]
    receipt = rt.notifier.sent[-1].notice
    assert receipt.data["exported"] == str(export)


def test_extension_decisions_past_the_caps_count_once_and_denials_are_recorded(make_runtime):
    from leases.errors import AlreadyDecided

    rt = make_runtime()
    s = api.submit(request(duration=timedelta(hours=8)))
    rt.queue.drain()
    for _ in range(2):
        api.extend(namespace="alice-nb", actor="U0ALICE", by=timedelta(hours=1))
    assert api.extend(namespace="alice-nb", actor="U0ALICE", by=timedelta(days=1)).outcome == "approval-required"
    api.decide_extension(lease_id=s.lease_id, approver="U0APPROVER1", by=timedelta(days=1), expected_extensions=2)
    with pytest.raises(AlreadyDecided):  # a second click on the same card
        api.decide_extension(lease_id=s.lease_id, approver="U0APPROVER1", by=timedelta(days=1),
                             expected_extensions=2)
    with pytest.raises(NotAuthorised):
        api.deny_extension(lease_id=s.lease_id, approver="U0BOB", by=timedelta(days=1))
    # A denial answers a request: only one the requester made can be denied.
    assert api.extend(namespace="alice-nb", actor="U0ALICE", by=timedelta(days=2)).outcome == "approval-required"
    api.deny_extension(lease_id=s.lease_id, approver="U0APPROVER1", by=timedelta(days=2))
    rt.queue.drain()
    with session_scope(rt.engine) as session:
        actions = session.exec(select(AuditEvent.action).where(AuditEvent.lease_id == s.lease_id)).all()
        assert actions.count("lease.extended") == 3 and actions.count("lease.extension_denied") == 1
    assert kinds(rt, "requester")[-1] == "lease.extension_denied"
