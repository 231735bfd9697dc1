"""Access waits for the quotas to be in force: an API server enforces a quota's status.hard,
which only the quota controller (kube-controller-manager) fills, so the RoleBinding that lets
the requester in is applied only once every quota's status.hard equals its spec.hard. A
controller that is late delays the binding; one that is down fails the apply as temporary,
with no binding written."""

from __future__ import annotations

import dataclasses

import pytest

from leases.errors import TemporaryError
from provisioners.bundle import apply
from sandbox.kube import KubeSandbox
from tests.integration.provisioners.conftest import bundle_objects

RBAC = "rbac.authorization.k8s.io"


class Clock:
    """A clock that moves only when slept on; `on_sleep` runs at each sleep."""

    def __init__(self, on_sleep=lambda: None) -> None:
        self.now = 0.0
        self.slept: list[float] = []
        self.on_sleep = on_sleep

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds
        self.on_sleep()


def binding(kube: KubeSandbox, spec) -> dict | None:
    return kube.get("rolebindings", spec.object_name, namespace=spec.namespace, group=RBAC)


def quotas(kube: KubeSandbox, spec) -> list[dict]:
    return [kube.get("resourcequotas", name, namespace=spec.namespace)
            for name in (spec.object_name, spec.critical_quota_name)]


def quota_reads(kube: KubeSandbox) -> list[str]:
    return [r.path for r in kube.requests(method="GET") if "/resourcequotas/" in r.path]


def test_access_is_granted_only_after_a_delayed_controller_synced(kube: KubeSandbox, api, spec, retry) -> None:
    kube.quota_delay = 0.2
    apply(api, spec, retry=retry, quota_timeout=10.0, quota_poll=0.02)
    granted = binding(kube, spec)
    assert granted is not None
    for quota in quotas(kube, spec):
        assert quota["status"]["hard"] == quota["spec"]["hard"]
        # The quota's last write is the controller's sync: the binding was written after it.
        assert int(granted["metadata"]["resourceVersion"]) > int(quota["metadata"]["resourceVersion"])
    assert len(quota_reads(kube)) > 2  # read again until synced
    patches = [r.path for r in kube.requests(method="PATCH")]
    assert patches[-1].endswith(f"/rolebindings/{spec.object_name}")


def test_access_waits_while_the_controller_is_down_and_follows_its_sync(
    kube: KubeSandbox, api, spec, retry
) -> None:
    seen: list[tuple[bool, bool]] = []

    def controller_comes_back() -> None:
        # What the requester could do at this moment: no binding yet, and no quota in force.
        seen.append((binding(kube, spec) is None, all(not q.get("status") for q in quotas(kube, spec))))
        kube.set_quota_stopped(False)

    kube.set_quota_stopped(True)
    clock = Clock(controller_comes_back)
    apply(api, spec, retry=retry, quota_timeout=30.0, quota_poll=0.5, sleep=clock.sleep, clock=clock)
    assert seen == [(True, True)]
    assert clock.slept == [0.5]
    assert binding(kube, spec) is not None
    assert all(q["status"]["hard"] == q["spec"]["hard"] for q in quotas(kube, spec))


def test_a_stopped_controller_fails_the_apply_as_temporary_with_no_access(
    kube: KubeSandbox, api, spec, retry
) -> None:
    kube.set_quota_stopped(True)
    clock = Clock()
    with pytest.raises(TemporaryError) as raised:
        apply(api, spec, retry=retry, quota_timeout=3.0, quota_poll=0.5, sleep=clock.sleep, clock=clock)
    assert binding(kube, spec) is None
    assert not [r for r in kube.requests() if "/rolebindings" in r.path]
    # Bounded: both quotas read at once, then every 0.5 s until 3 s have passed.
    assert clock.now == pytest.approx(3.0) and len(clock.slept) == 6
    assert len(quota_reads(kube)) == 2 * 7
    message = str(raised.value)
    assert message.startswith(f"resource quota {spec.object_name} in namespace {spec.namespace}: ")
    assert "the quota controller (kube-controller-manager) has not synced it yet after 3s" in message
    assert "it limits nothing yet instead of limits.cpu=" in message
    assert "requests.nvidia.com/gpu=2" in message
    assert "access is held back" in message and "check that kube-controller-manager is running" in message.lower()
    # Once the controller is back, the retried apply grants access.
    kube.set_quota_stopped(False)
    apply(api, spec, retry=retry, sleep=clock.sleep, clock=clock)
    assert binding(kube, spec) is not None
    assert len(clock.slept) == 6  # no wait: the quotas were in force at once


def test_a_changed_quota_is_waited_for_too(kube: KubeSandbox, api, spec, retry) -> None:
    apply(api, spec, retry=retry)
    before = binding(kube, spec)["metadata"]["resourceVersion"]
    kube.set_quota_stopped(True)
    grown = dataclasses.replace(spec, units=3)
    clock = Clock()
    with pytest.raises(TemporaryError) as raised:
        apply(api, grown, retry=retry, quota_timeout=1.0, quota_poll=0.5, sleep=clock.sleep, clock=clock)
    assert "so it still enforces " in str(raised.value)
    assert "requests.nvidia.com/gpu=2" in str(raised.value).split("instead of")[0]
    assert "requests.nvidia.com/gpu=3" in str(raised.value).split("instead of")[1]
    assert bundle_objects(kube, spec)["quota"]["status"]["hard"]["requests.nvidia.com/gpu"] == "2"
    assert binding(kube, spec)["metadata"]["resourceVersion"] == before
    kube.set_quota_stopped(False)
    apply(api, grown, retry=retry)
    assert bundle_objects(kube, spec)["quota"]["status"]["hard"]["requests.nvidia.com/gpu"] == "3"


def test_an_unchanged_reapply_reads_no_quota(kube: KubeSandbox, api, spec, retry) -> None:
    apply(api, spec, retry=retry)
    kube.clear_requests()
    kube.set_quota_stopped(True)  # nothing to sync: the apply answers show the quotas in force
    apply(api, spec, retry=retry, quota_timeout=0.0)
    assert quota_reads(kube) == []
