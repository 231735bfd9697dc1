"""Apply through the official client to the sandbox API server: create, idempotency, update,
drift repair, adoption, the ownership guard, and the number of requests at the server."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest
from kubernetes import client

from config.policy import PinningMechanism, Policy
from provisioners.bundle import OwnershipError, apply, teardown
from provisioners.kube import RetryPolicy
from sandbox.kube import KubeSandbox
from tests.integration.provisioners.conftest import (
    LEASE_ID,
    NEW_NAMESPACE_REQUESTS,
    OTHER_LEASE,
    answered,
    bundle_objects,
    make_spec,
    versions,
    writes,
)


def test_create_makes_every_object_in_nine_requests(kube: KubeSandbox, api, spec, retry) -> None:
    result = apply(api, spec, retry=retry)
    assert result.namespace_created
    assert len(kube.requests()) == NEW_NAMESPACE_REQUESTS == 9
    # Each new quota is read once, to see it in force, before the binding lets the requester in.
    calls = [f"{r.method} {r.path.rsplit('/', 2)[-2]}" for r in kube.requests()]
    assert calls[-3:] == ["GET resourcequotas", "GET resourcequotas", "PATCH rolebindings"]
    objs = bundle_objects(kube, spec)
    assert all(objs.values()), {k: bool(v) for k, v in objs.items()}
    labels = objs["namespace"]["metadata"]["labels"]
    assert labels["app.kubernetes.io/managed-by"] == "gpulease"
    assert labels["gpulease.io/lease"] == LEASE_ID
    assert labels["gpulease.io/tier"] == "h100-1g"
    assert labels["pod-security.kubernetes.io/enforce"] == "baseline"
    assert labels["pod-security.kubernetes.io/enforce-version"] == "latest"
    assert objs["namespace"]["metadata"]["annotations"]["scheduler.alpha.kubernetes.io/node-selector"] == (
        "gpulease.io/tier=h100-1g"
    )
    assert objs["quota"]["spec"]["hard"]["requests.nvidia.com/gpu"] == "2"
    assert objs["binding"]["subjects"][0]["name"] == "oidc:alice@example.com"
    # One field manager for everything, and server-side apply for every object inside.
    patches = kube.requests(method="PATCH")
    assert len(patches) == 5
    assert {r.param("fieldManager") for r in kube.requests() if r.method in ("POST", "PATCH")} == {"gpulease"}
    assert all(r.content_type.startswith("application/apply-patch+yaml") for r in patches)
    assert all(r.param("force") == "true" for r in patches)
    managers = {m["manager"] for m in objs["quota"]["metadata"].get("managedFields", [])}
    assert managers == {"gpulease"}


def test_second_apply_changes_nothing(kube: KubeSandbox, api, spec, retry) -> None:
    apply(api, spec, retry=retry)
    before = versions(kube, spec)
    kube.clear_requests()
    result = apply(api, spec, retry=retry)
    assert not result.namespace_created
    assert versions(kube, spec) == before
    # Guard read plus one apply per object inside; the unchanged namespace is not written.
    assert len(kube.requests()) == 6
    assert "PATCH /api/v1/namespaces/ml-alice-1" not in writes(kube)


def test_update_changes_only_what_changed(kube: KubeSandbox, api, policy: Policy, spec, retry) -> None:
    apply(api, spec, retry=retry)
    before = versions(kube, spec)
    extended = dataclasses.replace(spec, expires_at=datetime(2030, 2, 1, tzinfo=UTC), units=3)
    apply(api, extended, retry=retry)
    after = versions(kube, spec)
    objs = bundle_objects(kube, spec)
    assert objs["namespace"]["metadata"]["annotations"]["gpulease.io/expires-at"] == "2030-02-01T00:00:00Z"
    assert objs["quota"]["spec"]["hard"]["requests.nvidia.com/gpu"] == "3"
    assert objs["quota"]["spec"]["hard"]["requests.cpu"] == "12"
    assert after["namespace"] != before["namespace"]
    assert after["quota"] != before["quota"]
    # The server bumps resourceVersion only on a real change.
    assert (after["critical"], after["limits"], after["netpol"], after["binding"]) == (
        before["critical"], before["limits"], before["netpol"], before["binding"],
    )


def test_drift_is_repaired_by_reapply(kube: KubeSandbox, api, other_client, spec, retry) -> None:
    apply(api, spec, retry=retry)
    core = client.CoreV1Api(other_client)
    core.patch_namespaced_resource_quota(
        spec.object_name, spec.namespace, {"spec": {"hard": {"requests.nvidia.com/gpu": "40"}}}
    )
    client.RbacAuthorizationV1Api(other_client).delete_namespaced_role_binding(spec.object_name, spec.namespace)
    core.patch_namespace(spec.namespace, {"metadata": {"labels": {"gpulease.io/tier": "h100-full"}}})
    assert bundle_objects(kube, spec)["binding"] is None

    apply(api, spec, retry=retry)
    objs = bundle_objects(kube, spec)
    assert objs["quota"]["spec"]["hard"]["requests.nvidia.com/gpu"] == "2"
    assert objs["binding"]["roleRef"]["name"] == "edit"
    assert objs["namespace"]["metadata"]["labels"]["gpulease.io/tier"] == "h100-1g"


def test_adopts_a_namespace_created_between_guard_and_create(
    kube: KubeSandbox, api, other_client, spec, retry
) -> None:
    # Our earlier attempt (or the GitOps controller) made the namespace; the guard read is
    # answered 404 as if it came just before, so our create meets 409 AlreadyExists.
    labels = {"app.kubernetes.io/managed-by": "gpulease", "gpulease.io/lease": LEASE_ID}
    client.CoreV1Api(other_client).create_namespace({"metadata": {"name": spec.namespace, "labels": labels}})
    kube.add_fault("status", status=404, method="GET", path=f"/api/v1/namespaces/{spec.namespace}", nth=1)
    kube.clear_requests()

    result = apply(api, spec, retry=retry)
    assert not result.namespace_created
    statuses = [(r.method, r.path, r.status) for r in answered(kube)][:3]
    assert statuses == [
        ("GET", "/api/v1/namespaces/ml-alice-1", 404),
        ("POST", "/api/v1/namespaces", 409),
        ("GET", "/api/v1/namespaces/ml-alice-1", 200),
    ]
    objs = bundle_objects(kube, spec)
    assert objs["namespace"]["metadata"]["labels"]["gpulease.io/tier"] == "h100-1g"
    assert all(objs.values())


def test_refuses_a_namespace_created_between_guard_and_create_by_someone_else(
    kube: KubeSandbox, api, other_client, spec, retry
) -> None:
    client.CoreV1Api(other_client).create_namespace({"metadata": {"name": spec.namespace}})
    kube.add_fault("status", status=404, method="GET", path=f"/api/v1/namespaces/{spec.namespace}", nth=1)
    kube.clear_requests()
    with pytest.raises(OwnershipError, match="not managed by gpulease"):
        apply(api, spec, retry=retry)
    assert writes(kube) == ["POST /api/v1/namespaces"]  # the create the server refused, nothing else
    assert kube.get("namespaces", spec.namespace)["metadata"].get("labels", {}).get("gpulease.io/lease") is None


def test_adopts_objects_precreated_by_another_client(kube: KubeSandbox, api, other_client, spec, retry) -> None:
    labels = {"app.kubernetes.io/managed-by": "gpulease", "gpulease.io/lease": LEASE_ID}
    core = client.CoreV1Api(other_client)
    core.create_namespace({"metadata": {"name": spec.namespace, "labels": labels}})
    core.create_namespaced_resource_quota(
        spec.namespace,
        {"metadata": {"name": spec.object_name}, "spec": {"hard": {"requests.nvidia.com/gpu": "9", "pods": "1"}}},
    )
    client.RbacAuthorizationV1Api(other_client).create_namespaced_role_binding(
        spec.namespace,
        {
            "metadata": {"name": spec.object_name},
            "subjects": [{"kind": "User", "name": "mallory", "apiGroup": "rbac.authorization.k8s.io"}],
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "admin"},
        },
    )
    apply(api, spec, retry=retry)
    objs = bundle_objects(kube, spec)
    assert objs["quota"]["spec"]["hard"]["requests.nvidia.com/gpu"] == "2"
    assert objs["quota"]["spec"]["hard"]["pods"] == "20"
    # roleRef cannot change in place: the binding was replaced.
    assert objs["binding"]["roleRef"]["name"] == "edit"
    assert [s["name"] for s in objs["binding"]["subjects"]] == ["oidc:alice@example.com"]


@pytest.mark.parametrize(
    ("labels", "wrong"),
    [
        (None, "not managed by gpulease"),
        ({"app.kubernetes.io/managed-by": "helm", "gpulease.io/lease": LEASE_ID}, "managed-by=helm"),
        ({"app.kubernetes.io/managed-by": "gpulease", "gpulease.io/lease": OTHER_LEASE},
         f"gpulease.io/lease={OTHER_LEASE}"),
    ],
    ids=["unmanaged", "other-manager", "other-lease"],
)
def test_guard_refuses_and_touches_nothing(kube: KubeSandbox, api, spec, retry, labels, wrong) -> None:
    kube.create("namespaces", {"metadata": {"name": spec.namespace, "labels": labels or {}}})
    before = kube.get("namespaces", spec.namespace)["metadata"]["resourceVersion"]
    kube.clear_requests()
    with pytest.raises(OwnershipError) as raised:
        apply(api, spec, retry=retry)
    assert wrong in str(raised.value) and spec.namespace in str(raised.value)
    with pytest.raises(OwnershipError):
        teardown(api, spec, retry=retry, timeout=1.0, poll=0.0)
    assert writes(kube) == []
    assert [r.method for r in kube.requests()] == ["GET", "GET"]
    assert kube.get("namespaces", spec.namespace)["metadata"]["resourceVersion"] == before


def test_admission_policy_is_applied_once_per_client(kube: KubeSandbox, api, policy: Policy, retry) -> None:
    first = make_spec(policy, pinning=PinningMechanism.MUTATING_ADMISSION_POLICY)
    second = make_spec(
        policy, pinning=PinningMechanism.MUTATING_ADMISSION_POLICY, lease_id="b" * 32, namespace="vision-carol"
    )
    apply(api, first, retry=retry)
    assert len(kube.requests()) == NEW_NAMESPACE_REQUESTS + 2
    group = "admissionregistration.k8s.io"
    map_obj = kube.get("mutatingadmissionpolicies", "gpulease-tier-pinning", group=group)
    assert map_obj is not None
    assert kube.get("mutatingadmissionpolicybindings", "gpulease-tier-pinning", group=group) is not None
    kube.clear_requests()
    apply(api, second, retry=retry)
    assert len(kube.requests()) == NEW_NAMESPACE_REQUESTS
    assert kube.get("mutatingadmissionpolicies", "gpulease-tier-pinning", group=group)["metadata"][
        "resourceVersion"
    ] == map_obj["metadata"]["resourceVersion"]


def test_admission_policy_reapply_from_a_new_client_changes_nothing(
    kube: KubeSandbox, api, policy: Policy, retry
) -> None:
    from provisioners.kube import api_client_for

    spec = make_spec(policy, pinning=PinningMechanism.MUTATING_ADMISSION_POLICY)
    apply(api, spec, retry=retry)
    group = "admissionregistration.k8s.io"
    before = kube.get("mutatingadmissionpolicies", "gpulease-tier-pinning", group=group)["metadata"]
    with api_client_for(client.Configuration(host=kube.url), request_timeout=2.0) as fresh:
        apply(fresh, spec, retry=RetryPolicy(base_delay=0.01))
    after = kube.get("mutatingadmissionpolicies", "gpulease-tier-pinning", group=group)["metadata"]
    assert after["resourceVersion"] == before["resourceVersion"]


def test_server_keeps_resource_version_on_an_identical_apply(kube: KubeSandbox, api, spec, retry) -> None:
    # apply() skips an unchanged namespace itself; this checks the server half of idempotency.
    from provisioners.bundle.apply import server_side_apply
    from provisioners.bundle.render import namespace

    apply(api, spec, retry=retry)
    first = server_side_apply(api, namespace(spec), field_manager="gpulease", retry=retry)
    second = server_side_apply(api, namespace(spec), field_manager="gpulease", retry=retry)
    assert second["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]
    changed = dataclasses.replace(spec, units=3)
    third = server_side_apply(api, namespace(changed), field_manager="gpulease", retry=retry)
    assert third["metadata"]["resourceVersion"] != second["metadata"]["resourceVersion"]


def test_apply_into_a_terminating_namespace_waits_for_it(kube: KubeSandbox, api, other_client, spec, retry) -> None:
    from leases.errors import TemporaryError

    apply(api, spec, retry=retry)
    core = client.CoreV1Api(other_client)
    core.patch_namespace(spec.namespace, {"metadata": {"finalizers": ["example.com/hold"]}})
    core.delete_namespace(spec.namespace)
    kube.clear_requests()
    with pytest.raises(TemporaryError, match="being deleted"):
        apply(api, spec, retry=retry)
    assert writes(kube) == []
