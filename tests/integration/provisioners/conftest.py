"""Fixtures: a sandbox API server per test, the platform's own client to it, a retry policy
whose sleeps are recorded instead of slept, and helpers to read the server's request log."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest
from kubernetes import client

from config.policy import PinningMechanism, Policy, load_policy
from config.settings import EXAMPLE_POLICY, Settings
from provisioners.bundle import BundleSpec, spec_from
from provisioners.kube import KubeApiClient, RetryPolicy, make_api_client
from sandbox.kube import KubeSandbox

LEASE_ID = "4f1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e"
OTHER_LEASE = "99999999999999999999999999999999"
WRITES = ("POST", "PUT", "PATCH", "DELETE")
# Requests for a new namespace (node-selector pinning): guard GET, POST namespace, 4 applies,
# a GET of each of the 2 quotas (synced by then), and the binding's apply.
NEW_NAMESPACE_REQUESTS = 9


class FakeClock:
    """A monotonic clock that moves only when slept on: a wait's timeout passes at once."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


class RecordedSleep:
    """Stands in for time.sleep in the retry policy: records, never blocks."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


@pytest.fixture(scope="session")
def policy() -> Policy:
    return load_policy(EXAMPLE_POLICY)


@pytest.fixture
def kube() -> Iterator[KubeSandbox]:
    threads = threading.active_count()
    with KubeSandbox(port=0, operator_delay=0.0, namespace_delay=0.0) as sandbox:
        yield sandbox
    # A request delayed past the client's timeout is still being served after the test: let
    # it finish (bounded) so its handler thread does not outlive the test. Python 3.11 builds
    # tracebacks with ast.parse, and a server thread printing one while the main thread
    # compiles a module trips a CPython bug ("AST constructor recursion depth mismatch").
    deadline = time.monotonic() + 10.0
    while threading.active_count() > threads and time.monotonic() < deadline:
        time.sleep(0.02)


@pytest.fixture
def api(kube: KubeSandbox) -> Iterator[KubeApiClient]:
    settings = Settings(_env_file=None, kube_api_url=kube.url, kube_request_timeout=0.5)
    with make_api_client(settings=settings) as api_client:
        yield api_client


@pytest.fixture
def other_client(kube: KubeSandbox) -> Iterator[client.ApiClient]:
    """Someone else's plain official client (kubectl-like), for objects made behind our back."""
    configuration = client.Configuration(host=kube.url)
    configuration.retries = False
    with client.ApiClient(configuration) as api_client:
        yield api_client


@pytest.fixture
def slept() -> RecordedSleep:
    return RecordedSleep()


@pytest.fixture
def retry(slept: RecordedSleep) -> RetryPolicy:
    return RetryPolicy(attempts=6, seconds=30.0, base_delay=0.01, max_delay=0.05, sleep=slept)


def make_spec(policy: Policy, *, pinning: PinningMechanism | None = None, **overrides) -> BundleSpec:
    values = dict(
        lease_id=LEASE_ID,
        namespace="ml-alice-1",
        cluster="sandbox",
        tier="h100-1g",
        team="ml-research",
        requester="U0ALICE",
        email="alice@example.com",
        units=2,
        expires_at=datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC),
    )
    values.update(overrides)
    spec = spec_from(policy, **values)
    return dataclasses.replace(spec, pinning=pinning) if pinning else spec


@pytest.fixture
def spec(policy: Policy) -> BundleSpec:
    return make_spec(policy)


def wait_until(predicate: Callable[[], object], *, timeout: float = 5.0) -> None:
    """Poll until predicate() is truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(0.01)


def answered(kube: KubeSandbox, **filters) -> list:
    """Return the recorded requests once each has its status (the server records the status
    just after sending the response, so the client can be a moment ahead of the log)."""
    wait_until(lambda: all(r.status is not None for r in kube.requests(**filters)))
    return kube.requests(**filters)


def writes(kube: KubeSandbox) -> list[str]:
    """Return "METHOD path" of every write request the server received."""
    return [f"{r.method} {r.path}" for r in kube.requests() if r.method in WRITES]


def bundle_objects(kube: KubeSandbox, spec: BundleSpec) -> dict[str, dict]:
    """Read the bundle's objects straight from the server's store."""
    name, ns = spec.object_name, spec.namespace
    return {
        "namespace": kube.get("namespaces", ns),
        "quota": kube.get("resourcequotas", name, namespace=ns),
        "critical": kube.get("resourcequotas", spec.critical_quota_name, namespace=ns),
        "limits": kube.get("limitranges", name, namespace=ns),
        "netpol": kube.get("networkpolicies", name, namespace=ns, group="networking.k8s.io"),
        "binding": kube.get("rolebindings", name, namespace=ns, group="rbac.authorization.k8s.io"),
    }


def versions(kube: KubeSandbox, spec: BundleSpec) -> dict[str, str]:
    return {k: v["metadata"]["resourceVersion"] for k, v in bundle_objects(kube, spec).items()}
