"""Teardown against the sandbox API server: guarded delete, bounded wait, request counts."""

from __future__ import annotations

import pytest

from leases.errors import TemporaryError
from provisioners.bundle import apply, teardown
from sandbox.kube import KubeSandbox
from tests.integration.provisioners.conftest import RecordedSleep, answered, wait_until, writes

NS = "/api/v1/namespaces/ml-alice-1"


class GoneBeforeNextPoll(RecordedSleep):
    """A poll interval long enough for the server to finish deleting (waits on the store,
    bounded), so the request count does not depend on thread timing."""

    def __init__(self, kube: KubeSandbox, namespace: str) -> None:
        super().__init__()
        self.kube = kube
        self.namespace = namespace

    def __call__(self, seconds: float) -> None:
        super().__call__(seconds)
        wait_until(lambda: self.kube.get("namespaces", self.namespace) is None, timeout=5.0)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_teardown_deletes_and_waits_until_gone(kube: KubeSandbox, api, spec, retry) -> None:
    apply(api, spec, retry=retry)
    uid = kube.get("namespaces", spec.namespace)["metadata"]["uid"]
    kube.clear_requests()
    waits = GoneBeforeNextPoll(kube, spec.namespace)
    assert teardown(api, spec, retry=retry, timeout=10.0, poll=0.5, sleep=waits) is True
    assert kube.get("namespaces", spec.namespace) is None
    assert kube.get("resourcequotas", spec.object_name, namespace=spec.namespace) is None
    methods = [(r.method, r.path, r.status) for r in answered(kube)]
    assert methods[:2] == [("GET", NS, 200), ("DELETE", NS, 200)]
    assert len(methods) == 3
    delete = kube.requests(method="DELETE")[0]
    assert delete.param("propagationPolicy") == "Foreground"
    assert delete.json()["preconditions"] == {"uid": uid}
    assert waits.calls == [0.5]


def test_teardown_of_a_gone_namespace_is_one_request(kube: KubeSandbox, api, spec, retry) -> None:
    assert teardown(api, spec, retry=retry, timeout=1.0, poll=0.1, sleep=RecordedSleep()) is False
    assert [(r.method, r.status) for r in answered(kube)] == [("GET", 404)]


def test_teardown_times_out_with_a_temporary_error(kube: KubeSandbox, api, spec, retry) -> None:
    apply(api, spec, retry=retry)
    # A finalizer nobody removes keeps the namespace terminating.
    from kubernetes import client

    client.CoreV1Api(api).patch_namespace(spec.namespace, {"metadata": {"finalizers": ["example.com/hold"]}})
    clock = FakeClock()
    with pytest.raises(TemporaryError, match="still terminating after 5s"):
        teardown(api, spec, retry=retry, timeout=5.0, poll=1.0, sleep=clock.sleep, clock=clock)
    assert clock.now == pytest.approx(5.0)
    polls = kube.requests(method="GET", path=NS)
    assert 5 <= len(polls) <= 7  # the guard read plus one poll per second, bounded
    # A second teardown sees it terminating and only waits: no second DELETE.
    kube.clear_requests()
    with pytest.raises(TemporaryError):
        teardown(api, spec, retry=retry, timeout=2.0, poll=1.0, sleep=clock.sleep, clock=clock)
    assert writes(kube) == []


def test_teardown_recovers_from_faults(kube: KubeSandbox, api, spec, retry, slept) -> None:
    apply(api, spec, retry=retry)
    kube.clear_requests()
    kube.add_fault("status", status=503, method="DELETE", path=NS, nth=1)
    kube.add_fault("drop", method="GET", path=NS, nth=2)
    waits = GoneBeforeNextPoll(kube, spec.namespace)
    assert teardown(api, spec, retry=retry, timeout=10.0, poll=0.1, sleep=waits) is True
    assert kube.get("namespaces", spec.namespace) is None
    # guard, DELETE 503 + retry, poll dropped + retry
    assert [(r.method, r.status) for r in answered(kube)] == [
        ("GET", 200), ("DELETE", 503), ("DELETE", 200), ("GET", 0), ("GET", 404),
    ]
