"""GitOps mode: a reclaim removes the lease's folder, then waits until Argo CD or Flux has pruned
the namespace (and the GPU pods in it) before it gives the units back and sends the receipt;
without pruning the admins are told what to do, as for a namespace that will not go.

The test plays the GitOps controller against the sandbox API server: it applies what the
folder holds, and deletes the namespace through the API once the folder is gone."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from kubernetes.client import ApiClient, Configuration, CoreV1Api
from kubernetes.utils import create_from_dict

from leases.errors import TemporaryError
from leases.reservations import held_reservation
from leases.states import LeaseState
from leases.store import session_scope
from tests.integration.workflows.conftest import gpu_pod
from tests.integration.workflows.test_pipeline import kinds, request, state_of
from workflows import api, sweeps, tasks
from workflows.steps import reclaiming

CONTROLLER = "argocd-application-controller/v3"


@pytest.fixture
def controller(kube) -> Iterator[CoreV1Api]:
    """The GitOps controller's own client to the cluster."""
    with ApiClient(Configuration(host=kube.url)) as client:
        client.user_agent = CONTROLLER
        yield CoreV1Api(client)


def _running(rt, kube, controller: CoreV1Api) -> tuple[str, Path]:
    """Alice's lease, its folder applied to the cluster and a GPU pod running in it."""
    s = api.submit(request())
    rt.queue.drain()
    assert state_of(rt, s.lease_id) is LeaseState.ACTIVE
    folder = rt.gitops_dir / "sandbox" / "alice-nb"
    assert kube.get("namespaces", "alice-nb") is None  # written, not applied: the controller applies it
    for name in yaml.safe_load((folder / "kustomization.yaml").read_text())["resources"]:
        create_from_dict(controller.api_client, yaml.safe_load((folder / name).read_text()))
    gpu_pod(kube, "train", "h100-1g-0", "alice-nb")
    return s.lease_id, folder


def _held(rt, lease_id: str) -> bool:
    with session_scope(rt.engine) as session:
        return held_reservation(session, lease_id=lease_id) is not None


class Pruning(threading.Thread):
    """Argo CD or Flux with pruning on: once the folder is gone, deletes its namespace."""

    def __init__(self, rt, controller: CoreV1Api, folder: Path, lease_id: str) -> None:
        super().__init__(daemon=True)
        self.rt, self.controller, self.folder, self.lease_id = rt, controller, folder, lease_id
        self.held_when_pruned: bool | None = None

    def run(self) -> None:
        deadline = time.monotonic() + 10
        while self.folder.exists():
            if time.monotonic() > deadline:
                return
            time.sleep(0.01)
        self.held_when_pruned = _held(self.rt, self.lease_id)
        self.controller.delete_namespace("alice-nb")


def test_a_gitops_reclaim_gives_the_units_back_once_the_controller_pruned_the_namespace(
    make_runtime, kube, controller, tmp_path
):
    rt = make_runtime(gitops_dir=tmp_path / "gitops")
    lease_id, folder = _running(rt, kube, controller)
    api.release(lease_id=lease_id, actor="U0ALICE")
    rt.queue.pending.clear()
    pruning = Pruning(rt, controller, folder, lease_id)
    pruning.start()
    assert reclaiming.reclaim(rt, lease_id) == LeaseState.RECLAIMED
    pruning.join(timeout=10)
    assert pruning.held_when_pruned is True  # the units were still held while the namespace ran
    assert not folder.exists() and kube.get("namespaces", "alice-nb") is None
    assert not _held(rt, lease_id)
    rt.queue.drain()
    assert kinds(rt, "requester")[-1] == "lease.reclaimed"
    # Only the controller wrote to the cluster after the namespace was created.
    deletes = kube.requests(method="DELETE")
    assert [r.user_agent for r in deletes] == [CONTROLLER]


def test_a_gitops_reclaim_keeps_the_units_while_the_namespace_runs_and_tells_the_admins_to_turn_pruning_on(
    make_runtime, kube, controller, clock, tmp_path
):
    rt = make_runtime(gitops_dir=tmp_path / "gitops")
    rt.teardown_timeout = 0.05
    lease_id, folder = _running(rt, kube, controller)
    api.release(lease_id=lease_id, actor="U0ALICE")
    rt.queue.pending.clear()
    with pytest.raises(TemporaryError, match="Argo CD or Flux has not pruned it"):
        reclaiming.reclaim(rt, lease_id)
    assert not folder.exists()
    assert kube.get("pods", "train", namespace="alice-nb") is not None  # its GPU pod runs on
    assert state_of(rt, lease_id) is LeaseState.RECLAIMING and _held(rt, lease_id)
    # The task retries, then tells the admins once; its units stay held.
    assert tasks.reclaim.apply(args=(lease_id,)).get() == LeaseState.RECLAIMING
    rt.queue.drain()
    assert kinds(rt, "admins") == ["admin.reclaim_stuck"]
    told = rt.notifier.sent[-1].notice.text
    assert "alice-nb on sandbox cannot be reclaimed: namespace alice-nb is still in cluster sandbox" in told
    assert "Argo CD or Flux has not pruned it" in told and "syncPolicy.automated.prune" in told
    assert "Kustomization spec.prune" in told and "delete the namespace by hand" in told and "stay reserved" in told
    assert "lease.reclaimed" not in kinds(rt, "requester") and _held(rt, lease_id)
    # An admin turns pruning on: the controller deletes the namespace; the stuck-step sweep finishes.
    controller.delete_namespace("alice-nb")
    rt.teardown_timeout = 10
    clock.advance(rt.stuck_after + timedelta(seconds=1))
    assert sweeps.sweep(rt).resumed == [lease_id]
    rt.queue.drain()
    assert state_of(rt, lease_id) is LeaseState.RECLAIMED and not _held(rt, lease_id)
    assert kube.get("namespaces", "alice-nb") is None
    assert kinds(rt, "requester")[-1] == "lease.reclaimed" and kinds(rt, "admins") == ["admin.reclaim_stuck"]


def test_a_gitops_export_the_api_cuts_short_is_made_again_before_the_folder_goes(
    make_runtime, kube, controller, tmp_path
):
    rt = make_runtime(gitops_dir=tmp_path / "gitops", export_dir=tmp_path / "exports")
    lease_id, folder = _running(rt, kube, controller)
    api.release(lease_id=lease_id, actor="U0ALICE")
    rt.queue.pending.clear()
    # The reclaim needs the API to see the namespace pruned: an export that cannot read an
    # object is not kept with a hole in it, but made again by the task's retry.
    kube.add_fault(
        "status", status=503, method="GET", path="/apis/rbac.authorization.k8s.io/v1/namespaces/alice-nb/rolebindings"
    )
    rt.teardown_timeout = 0.05
    with pytest.raises(TemporaryError, match="RoleBinding"):
        reclaiming.reclaim(rt, lease_id)
    assert folder.exists() and not (tmp_path / "exports").exists()
    kube.clear_faults()
    rt.teardown_timeout = 10
    pruning = Pruning(rt, controller, folder, lease_id)
    pruning.start()
    assert reclaiming.reclaim(rt, lease_id) == LeaseState.RECLAIMED
    pruning.join(timeout=10)
    [export] = list((tmp_path / "exports").glob("*.json"))
    assert "RoleBinding" in {item["kind"] for item in json.loads(export.read_text())["items"]}
