"""Teardown against the sandbox API server: guarded delete, bounded wait, request counts."""

from __future__ import annotations

import pytest
from kubernetes import client

from leases.errors import TemporaryError
from provisioners.bundle import apply, teardown
from provisioners.kube import KubeApiError, RetryPolicy
from sandbox.kube import KubeSandbox
from tests.integration.provisioners.conftest import FakeClock, RecordedSleep, answered, wait_until, writes

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
    # Background, as kubectl asks: Foreground puts a finalizer on the namespace that only the
    # garbage collector removes, and has left namespaces terminating for good.
    assert delete.param("propagationPolicy") == "Background"
    assert delete.json()["propagationPolicy"] == "Background"
    assert delete.json()["preconditions"] == {"uid": uid}
    assert waits.calls == [0.5]


def test_teardown_of_a_gone_namespace_is_one_request(kube: KubeSandbox, api, spec, retry) -> None:
    assert teardown(api, spec, retry=retry, timeout=1.0, poll=0.1, sleep=RecordedSleep()) is False
    assert [(r.method, r.status) for r in answered(kube)] == [("GET", 404)]


def test_teardown_times_out_with_a_temporary_error(kube: KubeSandbox, api, spec, retry) -> None:
    apply(api, spec, retry=retry)
    # A finalizer nobody removes keeps the namespace terminating.
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


HOLD = {"metadata": {"finalizers": ["example.com/hold"]}}


class ReleaseThenGone(RecordedSleep):
    """A poll interval in which the holding finalizer goes and the server finishes deleting."""

    def __init__(self, kube: KubeSandbox, core: client.CoreV1Api, namespace: str) -> None:
        super().__init__()
        self.kube, self.core, self.namespace = kube, core, namespace

    def __call__(self, seconds: float) -> None:
        super().__call__(seconds)
        if self.kube.get("namespaces", self.namespace) is not None:
            self.core.patch_namespace(self.namespace, {"metadata": {"finalizers": None}})
        wait_until(lambda: self.kube.get("namespaces", self.namespace) is None, timeout=5.0)


def phase(kube: KubeSandbox, namespace: str) -> str | None:
    return ((kube.get("namespaces", namespace) or {}).get("status") or {}).get("phase")


def test_a_retried_delete_that_finds_our_namespace_terminating_waits(
    kube: KubeSandbox, api, other_client, spec
) -> None:
    apply(api, spec, retry=RetryPolicy(base_delay=0.01))
    core = client.CoreV1Api(other_client)
    core.patch_namespace(spec.namespace, HOLD)  # keeps it terminating until released
    kube.clear_requests()
    # The first DELETE goes through at the server after the client gave up on it (0.5 s).
    kube.add_fault("delay", method="DELETE", path=NS, nth=1, seconds=1.5)

    def until_terminating(_: float) -> None:  # the retry waits for the lost DELETE to land
        wait_until(lambda: phase(kube, spec.namespace) == "Terminating", timeout=5.0)

    retry = RetryPolicy(attempts=4, seconds=30.0, base_delay=0.01, max_delay=0.05, sleep=until_terminating)
    waits = ReleaseThenGone(kube, core, spec.namespace)
    assert teardown(api, spec, retry=retry, timeout=10.0, poll=0.1, sleep=waits) is True
    assert kube.get("namespaces", spec.namespace) is None
    deletes = answered(kube, method="DELETE")
    assert sorted(r.status for r in deletes) == [200, 409]  # the lost one, and the retry's conflict
    assert waits.calls == [0.1]  # then it waited as usual


def test_a_delete_refused_because_the_name_is_a_new_namespace_is_done(
    kube: KubeSandbox, api, other_client, spec, retry
) -> None:
    apply(api, spec, retry=retry)
    core = client.CoreV1Api(other_client)
    kube.clear_requests()
    kube.add_fault("status", status=503, method="DELETE", path=NS, nth=1)

    def replaced(_: float) -> None:  # before the retry: ours goes, someone takes the name
        core.delete_namespace(spec.namespace)
        wait_until(lambda: kube.get("namespaces", spec.namespace) is None, timeout=5.0)
        core.create_namespace({"metadata": {"name": spec.namespace}})

    retry = RetryPolicy(attempts=4, seconds=30.0, base_delay=0.01, max_delay=0.05, sleep=replaced)
    assert teardown(api, spec, retry=retry, timeout=10.0, poll=0.1, sleep=RecordedSleep()) is True
    statuses = [r.status for r in answered(kube, method="DELETE", path=NS)]
    assert statuses[-1] == 409  # the uid precondition refused deleting the new namespace
    assert phase(kube, spec.namespace) == "Active"


def test_a_conflict_on_a_namespace_still_active_fails(kube: KubeSandbox, api, spec, retry) -> None:
    apply(api, spec, retry=retry)
    kube.add_fault("status", status=409, method="DELETE", path=NS, nth=1, message="injected conflict")
    with pytest.raises(KubeApiError, match="injected conflict"):
        teardown(api, spec, retry=retry, timeout=1.0, poll=0.1, sleep=RecordedSleep())
    assert phase(kube, spec.namespace) == "Active"
