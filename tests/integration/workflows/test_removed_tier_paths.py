"""The other paths of a lease whose tier was taken out of the policy: cleaning up after a failed
provisioning (and a namespace an apply wrote after the lease ended) needs no tier sizes and
works; a refresh after an extension re-labels the namespace and keeps its quota as it is;
provisioning, which would have to size a new quota, fails with the tier named; the receipt,
which cannot tell what a unit of it is in GPUs, says so instead of guessing."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
import yaml
from kubernetes.client import CoreV1Api
from sqlmodel import select

from leases.errors import TemporaryError
from leases.models import AuditEvent
from leases.records import get_lease
from leases.reservations import held_reservation
from leases.states import LeaseState
from leases.store import session_scope
from tests.integration.workflows.test_pipeline import kinds, request, state_of
from tests.integration.workflows.test_removed_tier import _bob_on_3g, _drop_3g
from workflows import api, sweeps, tasks
from workflows.steps import placing, provisioning, reclaiming

EXPIRES = "gpulease.io/expires-at"


def _placed_bob_on_3g(rt) -> str:
    """Bob's 3g lease, approved and placed, its provisioning not run yet."""
    s = api.submit(request(tier="h100-3g", namespace="bob-3g", requester="U0BOB", duration=timedelta(hours=8)))
    api.decide(lease_id=s.lease_id, approver="U0APPROVER1", approve=True)
    rt.queue.pending.clear()
    placing.place_lease(rt, s.lease_id)
    assert state_of(rt, s.lease_id) is LeaseState.PROVISIONING
    rt.queue.pending.clear()
    return s.lease_id


def _half_provisioned(rt, kube, lease_id: str) -> None:
    """Run a provisioning that creates the namespace and then cannot reach the API server."""
    kube.add_fault("status", status=503, method="PATCH", path="/api/v1/namespaces/bob-3g/resourcequotas")
    with pytest.raises(TemporaryError):
        provisioning.provision(rt, lease_id)
    kube.clear_faults()
    assert kube.get("namespaces", "bob-3g")["metadata"]["labels"]["gpulease.io/lease"] == lease_id


def test_a_provisioning_retried_after_the_tier_left_the_policy_fails_naming_it_and_removes_the_namespace(
    make_runtime, kube
):
    rt = make_runtime()
    lease_id = _placed_bob_on_3g(rt)
    _half_provisioned(rt, kube, lease_id)
    _drop_3g(rt)
    tasks.provision.apply(args=(lease_id,)).get()  # the task's retry
    assert state_of(rt, lease_id) is LeaseState.FAILED
    assert kube.get("namespaces", "bob-3g") is None  # compensated: what the first try created is gone
    with session_scope(rt.engine) as session:
        assert held_reservation(session, lease_id=lease_id) is None
        reason = get_lease(session, lease_id=lease_id).failure_reason
    assert "tier h100-3g is no longer in the policy" in reason and "put h100-3g back in the policy" in reason
    rt.queue.drain()
    failed = rt.notifier.sent[-1].notice
    assert failed.kind == "lease.failed" and "h100-3g" in failed.text and failed.data["cleanup"].startswith("removed")


def test_a_namespace_written_after_the_lease_ended_is_removed_though_its_tier_left_the_policy(make_runtime, kube):
    rt = make_runtime()
    lease_id = _placed_bob_on_3g(rt)
    _half_provisioned(rt, kube, lease_id)
    with session_scope(rt.engine) as session:
        late = provisioning.bundle_spec(rt, get_lease(session, lease_id=lease_id))
    api.release(lease_id=lease_id, actor="U0BOB")
    rt.queue.pending.clear()
    assert reclaiming.reclaim(rt, lease_id) == LeaseState.RECLAIMED
    assert kube.get("namespaces", "bob-3g") is None
    provisioning.apply_bundle(rt, late)  # the provisioning's last try, still in flight, writes it again
    _drop_3g(rt)
    # Its retries spent, the task compensates: the lease is over, so the namespace is a stray.
    assert provisioning.compensate(rt, lease_id, reason="gave up after retries") == LeaseState.RECLAIMED
    assert kube.get("namespaces", "bob-3g") is None


def test_a_refresh_after_an_extension_relabels_the_namespace_and_keeps_the_quota_of_a_tier_the_policy_lost(
    make_runtime, kube
):
    rt = make_runtime()
    lease_id = _bob_on_3g(rt)
    quota = "gpulease-" + lease_id
    hard = kube.get("resourcequotas", quota, namespace="bob-3g")["spec"]["hard"]
    assert hard["requests.cpu"] == "8"  # the tier's own size: not the default of 4
    _drop_3g(rt)
    extended = api.extend(lease_id=lease_id, actor="U0BOB", by=timedelta(hours=4))
    assert extended.outcome == "extended"
    rt.queue.drain()
    namespace = kube.get("namespaces", "bob-3g")
    assert namespace["metadata"]["annotations"][EXPIRES] == extended.expires_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert kube.get("resourcequotas", quota, namespace="bob-3g")["spec"]["hard"] == hard
    with session_scope(rt.engine) as session:
        lease = get_lease(session, lease_id=lease_id)
        assert (lease.state, lease.step) == (LeaseState.ACTIVE, None)
    assert "lease.extended" in kinds(rt, "requester")


def test_a_refresh_of_a_tier_the_policy_lost_does_not_create_a_namespace_without_its_quota(make_runtime, kube):
    rt = make_runtime()
    lease_id = _bob_on_3g(rt)
    _drop_3g(rt)
    CoreV1Api(rt.kube("sandbox")).delete_namespace("bob-3g")  # by hand
    deadline = time.monotonic() + 10
    while kube.get("namespaces", "bob-3g") is not None:
        assert time.monotonic() < deadline, "bob-3g was not deleted"
        time.sleep(0.01)
    assert api.extend(lease_id=lease_id, actor="U0BOB", by=timedelta(hours=4)).outcome == "extended"
    rt.queue.drain()
    assert kube.get("namespaces", "bob-3g") is None
    assert state_of(rt, lease_id) is LeaseState.ACTIVE


def test_a_refresh_in_gitops_mode_rewrites_only_the_namespace_file_of_a_tier_the_policy_lost(make_runtime, tmp_path):
    rt = make_runtime(gitops_dir=tmp_path / "gitops")
    lease_id = _bob_on_3g(rt)
    folder = tmp_path / "gitops" / "sandbox" / "bob-3g"
    before = {path.name: path.read_text() for path in folder.iterdir()}
    _drop_3g(rt)
    extended = api.extend(lease_id=lease_id, actor="U0BOB", by=timedelta(hours=4))
    rt.queue.drain()
    after = {path.name: path.read_text() for path in folder.iterdir()}
    assert [name for name in after if after[name] != before[name]] == ["00-namespace.yaml"]
    namespace = yaml.safe_load(after["00-namespace.yaml"])
    assert namespace["metadata"]["annotations"][EXPIRES] == extended.expires_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert namespace["metadata"]["labels"]["gpulease.io/tier"] == "h100-3g"


def _reclaimed_event(rt, lease_id: str) -> AuditEvent:
    with session_scope(rt.engine) as session:
        return session.exec(
            select(AuditEvent).where(AuditEvent.lease_id == lease_id, AuditEvent.to_state == LeaseState.RECLAIMED)
        ).one()


def test_the_receipt_of_a_tier_the_policy_lost_says_why_it_has_no_gpu_hours_and_the_audit_says_the_same(
    make_runtime, clock
):
    rt = make_runtime()
    lease_id = _bob_on_3g(rt)
    _drop_3g(rt)
    clock.advance(timedelta(hours=9))
    sweeps.sweep(rt)
    rt.queue.drain()
    receipt = rt.notifier.sent[-1].notice
    assert receipt.kind == "lease.reclaimed"
    # One 3g.40gb unit is 1/2 of an H100: counting it as a whole GPU would bill 9 GPU-hours.
    assert receipt.data["gpu_hours"] is None and receipt.data["hours"] == 9.0
    assert receipt.data["gpu_hours_unknown"] == (
        "tier h100-3g is no longer in the policy, so what one of its units is in GPUs is not known"
    )
    assert "1× h100-3g reserved for 9.0 hours" in receipt.text
    assert "GPU-hours are not computed: tier h100-3g is no longer in the policy" in receipt.text
    assert "9.0 GPU-hours" not in receipt.text
    audit = _reclaimed_event(rt, lease_id).data
    assert {k: audit[k] for k in ("gpu_hours", "hours", "gpu_hours_unknown")} == {
        k: receipt.data[k] for k in ("gpu_hours", "hours", "gpu_hours_unknown")
    }


def test_the_audit_of_a_reclaim_keeps_the_gpu_hours_of_its_receipt(make_runtime, clock):
    rt = make_runtime()
    lease_id = _bob_on_3g(rt)
    clock.advance(timedelta(hours=9))
    sweeps.sweep(rt)
    rt.queue.drain()
    receipt = rt.notifier.sent[-1].notice
    assert receipt.data["gpu_hours"] == 4.5  # 3g.40gb: two units per H100
    assert "4.5 GPU-hours reserved (1× h100-3g)" in receipt.text
    audit = _reclaimed_event(rt, lease_id).data
    assert (audit["gpu_hours"], audit["hours"]) == (4.5, 9.0) and "gpu_hours_unknown" not in audit
