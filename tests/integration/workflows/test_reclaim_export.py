"""A reclaim exports the namespace's objects once, before deleting it: a reclaim run again
(the task's retry after the namespace was slow to go, the stuck-step sweep) keeps that
export instead of writing one of the namespace being emptied over it."""

from __future__ import annotations

import json
import time

import pytest
from kubernetes.client import CoreV1Api
from sqlmodel import select

from leases.errors import TemporaryError
from leases.models import AuditEvent
from leases.states import LeaseState
from leases.store import session_scope
from tests.integration.workflows.test_pipeline import request, state_of
from workflows import api
from workflows.steps import reclaiming

ALL_KINDS = ["LimitRange", "Namespace", "NetworkPolicy", "ResourceQuota", "ResourceQuota", "RoleBinding"]


def _kinds(path) -> list[str]:
    return sorted(item["kind"] for item in json.loads(path.read_text())["items"])


def _emptied(kube, namespace: str) -> None:
    deadline = time.monotonic() + 10
    while kube.list("resourcequotas", namespace=namespace):
        assert time.monotonic() < deadline, f"{namespace} still holds its objects"
        time.sleep(0.01)


def test_a_retried_reclaim_keeps_the_first_export(make_runtime, kube, tmp_path):
    rt = make_runtime(export_dir=tmp_path / "exports")
    rt.teardown_timeout = 0.2
    s = api.submit(request())
    rt.queue.drain()
    assert state_of(rt, s.lease_id) is LeaseState.ACTIVE
    # Something in the cluster holds the namespace for a while (a finalizer).
    core = CoreV1Api(rt.kube("sandbox"))
    core.patch_namespace("alice-nb", {"metadata": {"finalizers": ["example.com/hold"]}})
    api.release(lease_id=s.lease_id, actor="U0ALICE")
    rt.queue.pending.clear()
    with pytest.raises(TemporaryError, match="still terminating"):
        reclaiming.reclaim(rt, s.lease_id)  # exported, deleted, then "still terminating"
    [path] = list((tmp_path / "exports").glob("*.json"))
    assert _kinds(path) == ALL_KINDS
    _emptied(kube, "alice-nb")  # the namespace's content is deleted; the namespace stays
    with pytest.raises(TemporaryError, match="still terminating"):
        reclaiming.reclaim(rt, s.lease_id)  # the task's retry
    assert _kinds(path) == ALL_KINDS
    core.patch_namespace("alice-nb", {"metadata": {"$deleteFromPrimitiveList/finalizers": ["example.com/hold"]}})
    rt.teardown_timeout = 10
    assert reclaiming.reclaim(rt, s.lease_id) == "reclaimed"
    assert _kinds(path) == ALL_KINDS
    with session_scope(rt.engine) as session:
        exports = session.exec(
            select(AuditEvent).where(AuditEvent.lease_id == s.lease_id, AuditEvent.action == "lease.exported")
        ).all()
    assert [e.data["path"] for e in exports] == [str(path)]  # recorded once
    rt.queue.drain()
    assert rt.notifier.sent[-1].notice.data["exported"] == str(path)  # the receipt names it


def test_no_export_is_recorded_when_none_is_configured(make_runtime):
    rt = make_runtime()
    s = api.submit(request())
    rt.queue.drain()
    api.release(lease_id=s.lease_id, actor="U0ALICE")
    rt.queue.drain()
    assert state_of(rt, s.lease_id) is LeaseState.RECLAIMED
    with session_scope(rt.engine) as session:
        actions = session.exec(select(AuditEvent.action).where(AuditEvent.lease_id == s.lease_id)).all()
    assert "lease.exported" not in actions
    assert not (rt.notifier.sent[-1].notice.data or {}).get("exported")


def test_an_export_the_api_cuts_short_is_made_again_before_anything_is_deleted(make_runtime, kube, tmp_path):
    rt = make_runtime(export_dir=tmp_path / "exports")
    s = api.submit(request())
    rt.queue.drain()
    api.release(lease_id=s.lease_id, actor="U0ALICE")
    rt.queue.pending.clear()
    # Every attempt to read the RoleBinding meets an API server that cannot answer.
    kube.add_fault(
        "status", status=503, method="GET", path="/apis/rbac.authorization.k8s.io/v1/namespaces/alice-nb/rolebindings"
    )
    with pytest.raises(TemporaryError, match="RoleBinding"):
        reclaiming.reclaim(rt, s.lease_id)
    assert kube.get("namespaces", "alice-nb")["metadata"].get("deletionTimestamp") is None  # untouched
    kube.clear_faults()
    assert reclaiming.reclaim(rt, s.lease_id) == "reclaimed"  # the task's retry
    [path] = list((tmp_path / "exports").glob("*.json"))
    assert _kinds(path) == ALL_KINDS
