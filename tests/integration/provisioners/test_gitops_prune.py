"""GitOps mode: once a lease's folder is removed, the wait for Argo CD or Flux to prune its
namespace, against the sandbox API server. The test plays the GitOps controller: it applies
the folder's namespace and deletes it through the API. The wait itself only reads."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from kubernetes import client

from leases.errors import TemporaryError
from provisioners.bundle import OwnershipError
from provisioners.gitops import remove_bundle, wait_pruned, write_bundle
from sandbox.kube import KubeSandbox
from tests.integration.provisioners.conftest import (
    OTHER_LEASE,
    FakeClock,
    RecordedSleep,
    answered,
    make_spec,
    wait_until,
)

NS = "/api/v1/namespaces/ml-alice-1"
CONTROLLER = "argocd-application-controller/v3"


class PrunedWhileWaiting(RecordedSleep):
    """The GitOps controller syncs during the first poll interval: it deletes the namespace
    through the API, and the interval lasts until the server has finished deleting it."""

    def __init__(self, kube: KubeSandbox, controller: client.ApiClient, namespace: str) -> None:
        super().__init__()
        self.kube, self.controller, self.namespace = kube, controller, namespace

    def __call__(self, seconds: float) -> None:
        super().__call__(seconds)
        if len(self.calls) == 1:
            client.CoreV1Api(self.controller).delete_namespace(self.namespace)
        wait_until(lambda: self.kube.get("namespaces", self.namespace) is None, timeout=5.0)


def _synced(controller: client.ApiClient, spec, root: Path) -> None:
    """Do what Argo CD or Flux does with a new folder: apply its namespace."""
    folder = write_bundle(spec, root=root)
    namespace = yaml.safe_load((folder / "00-namespace.yaml").read_text())
    client.CoreV1Api(controller).create_namespace(namespace)


def test_the_wait_returns_once_the_controller_pruned_the_namespace_and_writes_nothing(
    kube: KubeSandbox, api, other_client, policy, retry, tmp_path
) -> None:
    spec = make_spec(policy)
    other_client.user_agent = CONTROLLER
    _synced(other_client, spec, tmp_path)
    assert remove_bundle(spec, root=tmp_path) is True
    kube.clear_requests()
    waits = PrunedWhileWaiting(kube, other_client, spec.namespace)
    assert wait_pruned(api, spec, root=tmp_path, timeout=10.0, poll=0.5, retry=retry, sleep=waits) is True
    assert waits.calls == [0.5]
    requests = [(r.method, r.path, r.user_agent == CONTROLLER) for r in answered(kube)]
    assert requests == [("GET", NS, False), ("DELETE", NS, True), ("GET", NS, False)]  # the DELETE: the controller's


def test_a_namespace_never_pruned_is_a_temporary_error_saying_to_turn_pruning_on(
    kube: KubeSandbox, api, other_client, policy, retry, tmp_path
) -> None:
    spec = make_spec(policy)
    _synced(other_client, spec, tmp_path)
    remove_bundle(spec, root=tmp_path)
    kube.clear_requests()
    clock = FakeClock()
    with pytest.raises(TemporaryError) as raised:
        wait_pruned(api, spec, root=tmp_path, timeout=5.0, poll=1.0, retry=retry, sleep=clock.sleep, clock=clock)
    message = str(raised.value)
    assert "namespace ml-alice-1 is still in cluster sandbox 5s after its GitOps folder" in message
    assert "Argo CD or Flux has not pruned it" in message
    assert "syncPolicy.automated.prune" in message and "spec.prune" in message and "delete the namespace" in message
    assert clock.now == pytest.approx(5.0)
    assert 5 <= len(kube.requests(method="GET", path=NS)) <= 7  # the guard read plus one poll a second
    assert [r.method for r in kube.requests() if r.method != "GET"] == []
    assert kube.get("namespaces", spec.namespace) is not None


def test_a_pruned_namespace_held_by_a_finalizer_is_said_to_be_terminating(
    kube: KubeSandbox, api, other_client, policy, retry, tmp_path
) -> None:
    spec = make_spec(policy)
    _synced(other_client, spec, tmp_path)
    core = client.CoreV1Api(other_client)
    core.patch_namespace(spec.namespace, {"metadata": {"finalizers": ["example.com/hold"]}})
    remove_bundle(spec, root=tmp_path)
    core.delete_namespace(spec.namespace)  # pruned, but held
    clock = FakeClock()
    with pytest.raises(TemporaryError, match="still terminating 3s after .*finalizers"):
        wait_pruned(api, spec, root=tmp_path, timeout=3.0, poll=1.0, retry=retry, sleep=clock.sleep, clock=clock)


def test_a_namespace_gone_already_or_taken_since_by_a_new_one_is_gone(
    kube: KubeSandbox, api, other_client, policy, retry, tmp_path
) -> None:
    spec = make_spec(policy)
    assert wait_pruned(api, spec, root=tmp_path, timeout=1.0, poll=0.1, retry=retry, sleep=RecordedSleep()) is False

    _synced(other_client, spec, tmp_path)
    remove_bundle(spec, root=tmp_path)
    core = client.CoreV1Api(other_client)

    def recreated(seconds: float) -> None:  # pruned, and the name taken again at once
        core.delete_namespace(spec.namespace)
        wait_until(lambda: kube.get("namespaces", spec.namespace) is None)
        core.create_namespace({"metadata": {"name": spec.namespace}})

    assert wait_pruned(api, spec, root=tmp_path, timeout=10.0, poll=0.1, retry=retry, sleep=recreated) is True
    assert kube.get("namespaces", spec.namespace) is not None  # someone else's: not ours to wait for


def test_a_namespace_of_another_lease_is_refused_untouched(
    kube: KubeSandbox, api, other_client, policy, retry, tmp_path
) -> None:
    _synced(other_client, make_spec(policy, lease_id=OTHER_LEASE), tmp_path / "other")
    kube.clear_requests()
    with pytest.raises(OwnershipError, match=f"gpulease.io/lease={OTHER_LEASE}"):
        wait_pruned(api, make_spec(policy), root=tmp_path, timeout=1.0, poll=0.1, retry=retry, sleep=RecordedSleep())
    assert [r.method for r in answered(kube)] == ["GET"]
