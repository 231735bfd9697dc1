"""The reconciler (drift repair, orphans both ways, stuck steps) and idle reclamation."""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import select

from leases.models import Lease
from leases.states import LeaseState
from leases.store import session_scope
from sandbox.prometheus import PrometheusSandbox
from tests.integration.workflows.conftest import roomy_policy
from tests.integration.workflows.test_pipeline import request, state_of
from workflows import api
from workflows.idle import idle_sweep
from workflows.reconcile import reconcile_cluster
from workflows.sweeps import sweep


def test_drift_is_repaired_and_orphans_reported_without_deleting(make_runtime, kube):
    rt = make_runtime()
    s = api.submit(request())
    rt.queue.drain()
    # Someone edits the quota and deletes the RoleBinding by hand.
    quota = kube.list("resourcequotas", namespace="alice-nb")[0]
    from kubernetes.client import CoreV1Api, RbacAuthorizationV1Api

    client = rt.kube("sandbox")
    CoreV1Api(client).patch_namespaced_resource_quota(
        quota["metadata"]["name"], "alice-nb", {"spec": {"hard": {"requests.nvidia.com/gpu": "50"}}}
    )
    rb = kube.list("rolebindings", namespace="alice-nb", group="rbac.authorization.k8s.io")[0]
    RbacAuthorizationV1Api(client).delete_namespaced_role_binding(rb["metadata"]["name"], "alice-nb")
    # An orphan: a managed namespace for a lease the store does not know.
    CoreV1Api(client).create_namespace(
        {"metadata": {"name": "stray", "labels": {"app.kubernetes.io/managed-by": "gpulease",
                                                  "gpulease.io/lease": "deadbeef"}}}
    )
    report = reconcile_cluster(rt, "sandbox")
    assert report.repaired == ["alice-nb"]
    assert report.orphan_namespaces == ["stray"]
    assert kube.list("resourcequotas", namespace="alice-nb")[0]["spec"]["hard"]["requests.nvidia.com/gpu"] == "1"
    assert kube.list("rolebindings", namespace="alice-nb", group="rbac.authorization.k8s.io")
    assert kube.get("namespaces", "stray") is not None  # reported, never deleted
    # A live lease whose namespace vanished is reported too.
    CoreV1Api(client).delete_namespace("alice-nb")
    kube_wait_gone(kube, "alice-nb")
    report = reconcile_cluster(rt, "sandbox")
    assert report.missing_namespaces == ["alice-nb"]
    rt.queue.drain()
    admin_kinds = rt.notifier.kinds("admins")
    assert admin_kinds == ["admin.orphan_namespace", "admin.missing_namespace"]
    reconcile_cluster(rt, "sandbox")
    rt.queue.drain()
    assert rt.notifier.kinds("admins") == admin_kinds  # each orphan reported once
    assert state_of(rt, s.lease_id) is LeaseState.ACTIVE


def kube_wait_gone(kube, name: str) -> None:
    import time

    deadline = time.monotonic() + 10
    while kube.get("namespaces", name) is not None:
        assert time.monotonic() < deadline, f"namespace {name} still there"
        time.sleep(0.01)


def test_stuck_step_is_resumed_by_the_sweep(make_runtime, clock):
    rt = make_runtime()
    s = api.submit(request())
    rt.queue.pending.clear()  # the worker that should have placed it died with the message
    assert state_of(rt, s.lease_id) is LeaseState.APPROVED
    assert sweep(rt).resumed == []
    clock.advance(rt.stuck_after + timedelta(seconds=1))
    assert sweep(rt).resumed == [s.lease_id]
    rt.queue.drain()
    assert state_of(rt, s.lease_id) is LeaseState.ACTIVE


def test_idle_lease_is_warned_then_reclaimed_unless_busy(make_runtime, clock):
    with PrometheusSandbox() as prom:
        rt = make_runtime(
            policy=roomy_policy(idle_after="2h", idle_threshold_percent=5),
            prometheus_url=prom.url,
            nodes=(("h100-full-0", "h100-full"),),
        )
        idle = api.submit(request(namespace="idle-nb", duration=timedelta(days=3), tier="h100-full"))
        busy = api.submit(request(namespace="busy-nb", duration=timedelta(days=3), tier="h100-full"))
        marked = api.submit(request(namespace="marked-nb", duration=timedelta(days=3), tier="h100-full"))
        for s in (idle, busy, marked):
            api.decide(lease_id=s.lease_id, approver="U0APPROVER2", approve=True)
        rt.queue.drain()
        start = clock().timestamp()
        for minute in range(0, 240, 5):
            t = start + minute * 60
            prom.add_samples({"__name__": "DCGM_FI_DEV_GPU_UTIL", "namespace": "busy-nb", "pod": "p"}, [(t, 80.0)])
            prom.add_samples({"__name__": "DCGM_FI_DEV_GPU_UTIL", "namespace": "idle-nb", "pod": "p"}, [(t, 1.0)])
        clock.advance(timedelta(hours=1))
        assert idle_sweep(rt).warned == []  # not active for the whole window yet
        clock.advance(timedelta(hours=1, minutes=1))
        first = idle_sweep(rt)
        assert sorted(first.warned) == sorted([idle.lease_id, marked.lease_id])  # marked-nb: no GPU pods
        api.mark_busy(lease_id=marked.lease_id, actor="U0ALICE")
        clock.advance(timedelta(minutes=30))
        assert idle_sweep(rt).reclaimed == []  # grace (1h) not over
        clock.advance(timedelta(minutes=31))
        second = idle_sweep(rt)
        assert second.reclaimed == [idle.lease_id]
        rt.queue.drain()
        assert state_of(rt, idle.lease_id) is LeaseState.RECLAIMED
        assert state_of(rt, busy.lease_id) is LeaseState.ACTIVE
        assert state_of(rt, marked.lease_id) is LeaseState.ACTIVE
        assert "lease.idle_warning" in rt.notifier.kinds("requester")
        assert any("max_over_time(DCGM_FI_DEV_GPU_UTIL" in q for q in prom.queries)


def test_idle_reclamation_does_nothing_without_exporter_data(make_runtime, clock):
    with PrometheusSandbox() as prom:
        rt = make_runtime(policy=roomy_policy(idle_after="1h"), prometheus_url=prom.url)
        api.submit(request(namespace="quiet", duration=timedelta(hours=10)))
        rt.queue.drain()
        clock.advance(timedelta(hours=3))
        report = idle_sweep(rt)
        assert report.warned == [] and "DCGM exporter" in report.skipped
        with session_scope(rt.engine) as session:
            assert [lease.state for lease in session.exec(select(Lease))] == [LeaseState.ACTIVE]
