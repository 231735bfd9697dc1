"""The quota controller and what admission enforces: status.hard, not spec.hard, as on a real
API server. A quota limits nothing until the controller has synced it (at once by default,
later with a delay, never while it is stopped), and a changed quota keeps its old limits
until then."""

from __future__ import annotations

import json

import pytest
from kubernetes.client.rest import ApiException

from .rawhttp import send
from .test_pods import gpu_pod, pinned
from .waiting import wait_until

GPU = "requests.nvidia.com/gpu"


def gpu_quota(gpus: int) -> dict:
    return {"metadata": {"name": "gpulease"}, "spec": {"hard": {GPU: str(gpus), "pods": "10"}}}


def refused(core, namespace: str, name: str) -> str:
    """Create a one-GPU pod that quota must refuse; return the refusal's message."""
    with pytest.raises(ApiException) as err:
        core.create_namespaced_pod(namespace, gpu_pod(name))
    assert err.value.status == 403
    return json.loads(err.value.body)["message"]


def status_of(core, name: str, namespace: str) -> dict:
    quota = core.read_namespaced_resource_quota(name, namespace)
    return {"hard": quota.status.hard, "used": quota.status.used}


def test_a_quota_is_synced_at_once_by_default(kube, core):
    pinned(core, "team", "h100-1g")
    created = core.create_namespaced_resource_quota("team", gpu_quota(1))
    assert created.status.hard is None  # the create's answer precedes the controller's sync
    assert status_of(core, "gpulease", "team") == {
        "hard": {GPU: "1", "pods": "10"}, "used": {GPU: "0", "pods": "0"},
    }
    core.create_namespaced_pod("team", gpu_pod("a"))
    assert refused(core, "team", "b").startswith('pods "b" is forbidden: exceeded quota: gpulease')


def test_a_quota_the_stopped_controller_never_synced_limits_nothing(kube, core):
    pinned(core, "team", "h100-1g")
    kube.set_quota_stopped(True)
    core.create_namespaced_resource_quota("team", gpu_quota(1))
    core.create_namespaced_pod("team", gpu_pod("a"))
    core.create_namespaced_pod("team", gpu_pod("b"))  # over spec.hard, and admitted
    assert core.read_namespaced_resource_quota("gpulease", "team").status.hard is None
    kube.set_quota_stopped(False)  # it catches up with what it missed
    assert status_of(core, "gpulease", "team") == {
        "hard": {GPU: "1", "pods": "10"}, "used": {GPU: "2", "pods": "2"},
    }
    assert "exceeded quota: gpulease, requested: requests.nvidia.com/gpu=1, used: requests.nvidia.com/gpu=2" in (
        refused(core, "team", "c")
    )


def test_a_changed_quota_keeps_its_old_limits_until_synced(kube, core):
    pinned(core, "team", "h100-1g")
    core.create_namespaced_resource_quota("team", gpu_quota(2))
    kube.set_quota_stopped(True)
    core.patch_namespaced_resource_quota("gpulease", "team", {"spec": {"hard": {GPU: "1"}}})
    core.create_namespaced_pod("team", gpu_pod("a"))
    core.create_namespaced_pod("team", gpu_pod("b"))  # within the old status.hard of 2
    # Usage is still counted, against the old limits.
    assert status_of(core, "gpulease", "team") == {
        "hard": {GPU: "2", "pods": "10"}, "used": {GPU: "2", "pods": "2"},
    }
    assert "limited: requests.nvidia.com/gpu=2" in refused(core, "team", "c")
    kube.set_quota_stopped(False)
    assert core.read_namespaced_resource_quota("gpulease", "team").status.hard[GPU] == "1"
    assert "limited: requests.nvidia.com/gpu=1" in refused(core, "team", "c")


def test_a_delayed_controller_syncs_later_on_its_own(kube, core):
    pinned(core, "team", "h100-1g")
    kube.quota_delay = 0.3
    core.create_namespaced_resource_quota("team", gpu_quota(1))
    assert core.read_namespaced_resource_quota("gpulease", "team").status.hard is None
    core.create_namespaced_pod("team", gpu_pod("a"))
    core.create_namespaced_pod("team", gpu_pod("b"))
    wait_until(lambda: core.read_namespaced_resource_quota("gpulease", "team").status.hard)
    wait_until(kube.idle)
    assert status_of(core, "gpulease", "team")["used"] == {GPU: "2", "pods": "2"}
    assert "exceeded quota: gpulease" in refused(core, "team", "c")


def test_a_delayed_sync_is_held_while_the_controller_is_stopped(kube, core):
    core.create_namespace({"metadata": {"name": "team"}})
    kube.quota_delay = 0.05
    core.create_namespaced_resource_quota("team", gpu_quota(1))
    kube.set_quota_stopped(True)
    wait_until(kube.idle)  # the delayed sync came due, and was held
    assert core.read_namespaced_resource_quota("gpulease", "team").status.hard is None
    kube.set_quota_stopped(False)
    assert core.read_namespaced_resource_quota("gpulease", "team").status.hard == {GPU: "1", "pods": "10"}


def test_a_status_without_usage_refuses_with_status_unknown(kube, core):
    pinned(core, "team", "h100-1g")
    core.create_namespaced_resource_quota("team", gpu_quota(1))
    core.replace_namespaced_resource_quota_status(
        "gpulease",
        "team",
        {"metadata": {"name": "gpulease"}, "spec": {"hard": {GPU: "1", "pods": "10"}},
         "status": {"hard": {GPU: "1", "pods": "10"}, "used": {"pods": "0"}}},
    )
    assert refused(core, "team", "a") == (
        'pods "a" is forbidden: status unknown for quota: gpulease, resources: requests.nvidia.com/gpu'
    )
    # Other kinds are not counted by that resource: a config map is admitted.
    core.create_namespaced_config_map("team", {"metadata": {"name": "settings"}})


def test_quota_controller_over_http(kube):
    assert send(kube.url, "GET", "/_sandbox/quota")[2] == {"delay": 0.0, "stopped": False}
    status, _, body = send(kube.url, "PUT", "/_sandbox/quota", {"delay": 1.5, "stopped": True})
    assert (status, body) == (200, {"delay": 1.5, "stopped": True})
    assert kube.quota_delay == 1.5 and kube.quota.stopped
    status, _, body = send(kube.url, "PUT", "/_sandbox/quota", {"stopped": "yes"})
    assert status == 400 and "stopped" in body["message"]
    status, _, body = send(kube.url, "PUT", "/_sandbox/quota", {"stopped": False})
    assert body == {"delay": 1.5, "stopped": False}
