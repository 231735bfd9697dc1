"""Every fault kind the sandbox injects, met by the retry policy while applying a bundle:
transient ones are recovered within the bound, permanent ones fail at once. Requests are
counted at the server."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest

from leases.errors import PermanentError, TemporaryError
from provisioners.bundle import apply
from provisioners.kube import KubeApiError, RetryPolicy
from sandbox.kube import KubeSandbox
from tests.integration.provisioners.conftest import (
    NEW_NAMESPACE_REQUESTS,
    answered,
    bundle_objects,
    wait_until,
    writes,
)

NS = "/api/v1/namespaces/ml-alice-1"
QUOTA = f"{NS}/resourcequotas/gpulease-4f1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e"
LIMITS = f"{NS}/limitranges/gpulease-4f1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e"
NETPOL = "/apis/networking.k8s.io/v1/namespaces/ml-alice-1/networkpolicies/gpulease-4f1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e"
BINDING = (
    "/apis/rbac.authorization.k8s.io/v1/namespaces/ml-alice-1/rolebindings/"
    "gpulease-4f1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e"
)

TRANSIENT = [
    ("429-retry-after", dict(kind="status", status=429, retry_after=2, method="POST", path="/api/v1/namespaces")),
    ("500", dict(kind="status", status=500, method="PATCH", path=QUOTA)),
    ("502", dict(kind="status", status=502, method="GET", path=NS)),
    ("503", dict(kind="status", status=503, method="PATCH", path=BINDING)),
    ("504", dict(kind="status", status=504, method="PATCH", path=NETPOL)),
    ("dropped-connection", dict(kind="drop", method="PATCH", path=LIMITS)),
    ("timeout-on-apply", dict(kind="delay", seconds=1.5, method="PATCH", path=QUOTA)),
    ("timeout-on-create", dict(kind="delay", seconds=1.5, method="POST", path="/api/v1/namespaces")),
]


@pytest.mark.parametrize(("case", "fault"), TRANSIENT, ids=[c for c, _ in TRANSIENT])
@pytest.mark.parametrize("times", [1, 3])
def test_transient_faults_are_recovered_within_the_bound(
    kube: KubeSandbox, api, spec, retry, slept, case: str, fault: dict, times: int
) -> None:
    rule = kube.add_fault(**fault, times=times)
    result = apply(api, spec, retry=retry)
    assert rule.fired == times
    objs = bundle_objects(kube, spec)
    assert all(objs.values())
    assert objs["quota"]["spec"]["hard"]["requests.nvidia.com/gpu"] == "2"
    # Each fault costs exactly one more request; a create that timed out but went through at
    # the server makes our next create meet AlreadyExists, and the adoption costs one read.
    adopted = 0 if result.namespace_created else 1
    assert case == "timeout-on-create" or not adopted
    if case == "timeout-on-create" and times > 1:
        # Timed-out creates keep running at the server; whether a later retry meets
        # AlreadyExists (one adoption read) or times out too depends on which lands first.
        assert NEW_NAMESPACE_REQUESTS + times <= len(kube.requests()) <= NEW_NAMESPACE_REQUESTS + times + 1
    elif case == "timeout-on-apply" and times > 1:
        # A timed-out apply that lands at the server before the last retry makes that retry
        # an update of a synced quota, whose answer shows it in force: no read of it then.
        assert NEW_NAMESPACE_REQUESTS + times - 1 <= len(kube.requests()) <= NEW_NAMESPACE_REQUESTS + times
    else:
        assert len(kube.requests()) == NEW_NAMESPACE_REQUESTS + times + adopted
    assert len(kube.requests()) <= NEW_NAMESPACE_REQUESTS + retry.attempts
    assert len(slept.calls) == times
    if fault.get("retry_after"):
        assert slept.calls == [2.0] * times


def test_forced_conflict_on_update_is_retried(kube: KubeSandbox, api, spec, retry, slept) -> None:
    apply(api, spec, retry=retry)
    kube.clear_requests()
    rule = kube.add_fault("conflict", method="PATCH", path=NS, times=2)
    extended = dataclasses.replace(spec, expires_at=datetime(2031, 1, 1, tzinfo=UTC))
    apply(api, extended, retry=retry)
    assert rule.fired == 2
    assert [r.status for r in answered(kube, method="PATCH", path=NS)] == [409, 409, 200]
    annotations = kube.get("namespaces", "ml-alice-1")["metadata"]["annotations"]
    assert annotations["gpulease.io/expires-at"] == "2031-01-01T00:00:00Z"
    assert len(kube.requests()) == 1 + 1 + 2 + 5  # guard, namespace apply + 2 retries, 5 applies


def test_retries_stop_at_the_attempt_bound(kube: KubeSandbox, api, spec, slept) -> None:
    retry = RetryPolicy(attempts=4, seconds=30.0, base_delay=0.01, max_delay=0.05, sleep=slept)
    kube.add_fault("status", status=503, method="PATCH", path=QUOTA)  # every time
    with pytest.raises(TemporaryError) as raised:
        apply(api, spec, retry=retry)
    assert len(kube.requests(method="PATCH", path=QUOTA)) == 4
    assert "apply resourcequota ml-alice-1/" in str(raised.value)
    assert "503" in str(raised.value)


def test_retries_stop_at_the_time_bound(kube: KubeSandbox, api, spec) -> None:
    clock = [0.0]

    def sleep(seconds: float) -> None:
        clock[0] += seconds

    retry = RetryPolicy(attempts=50, seconds=10.0, sleep=sleep, clock=lambda: clock[0], jitter=lambda: 0.0)
    kube.add_fault("status", status=429, retry_after=4, method="PATCH", path=QUOTA)
    with pytest.raises(TemporaryError):
        apply(api, spec, retry=retry)
    # Retry-After 4 s twice, then the 2 s left of the budget, then one last attempt.
    assert len(kube.requests(method="PATCH", path=QUOTA)) == 4
    assert clock[0] == pytest.approx(10.0)


@pytest.mark.parametrize(
    ("status", "method", "path", "before"),
    [
        (403, "POST", "/api/v1/namespaces", 1),
        (422, "PATCH", QUOTA, 2),
        (400, "PATCH", BINDING, 8),
        (401, "GET", NS, 0),
    ],
)
def test_permanent_refusals_fail_at_once(
    kube: KubeSandbox, api, spec, retry, slept, status: int, method: str, path: str, before: int
) -> None:
    kube.add_fault("status", status=status, method=method, path=path, message=f"injected refusal {status}")
    with pytest.raises(PermanentError) as raised:
        apply(api, spec, retry=retry)
    assert len(kube.requests(method=method, path=path)) == 1
    assert len(kube.requests()) == before + 1
    assert slept.calls == []
    error = raised.value
    assert isinstance(error, KubeApiError) and error.status == status
    assert f"injected refusal {status}" in str(error)


def test_real_forbidden_names_the_object_verb_and_message(kube: KubeSandbox, api, spec, retry) -> None:
    kube.deny("create", "namespaces")
    with pytest.raises(KubeApiError) as raised:
        apply(api, spec, retry=retry)
    text = str(raised.value)
    assert text.startswith("create namespace ml-alice-1: refused by the API server (403 Forbidden)")
    assert 'namespaces "ml-alice-1" is forbidden' in text or "forbidden" in text
    assert len(kube.requests()) == 2
    assert writes(kube) == ["POST /api/v1/namespaces"]


def test_replacing_a_binding_survives_a_lost_delete_response(kube: KubeSandbox, api, spec) -> None:
    apply(api, spec, retry=RetryPolicy(base_delay=0.01))
    old_uid = bundle_objects(kube, spec)["binding"]["metadata"]["uid"]
    kube.clear_requests()
    # The policy's cluster_role changed: roleRef is immutable, so the binding is replaced. The
    # first DELETE goes through at the server after the client gave up on it (0.5 s).
    kube.add_fault("delay", seconds=1.5, method="DELETE", path=BINDING, nth=1)

    def until_deleted(_: float) -> None:  # the retry waits for the lost DELETE to land
        wait_until(lambda: bundle_objects(kube, spec)["binding"] is None, timeout=5.0)

    retry = RetryPolicy(attempts=4, seconds=30.0, base_delay=0.01, max_delay=0.05, sleep=until_deleted)
    apply(api, dataclasses.replace(spec, cluster_role="view"), retry=retry)
    binding = bundle_objects(kube, spec)["binding"]
    assert binding["roleRef"]["name"] == "view"
    assert binding["metadata"]["uid"] != old_uid
    deletes = answered(kube, method="DELETE", path=BINDING)
    assert sorted(r.status for r in deletes) == [200, 404]  # the lost one, and the retry's 404
    # Each DELETE names the binding it read, so a binding put there since is not deleted.
    assert [r.json()["preconditions"] for r in deletes] == [{"uid": old_uid}] * 2
