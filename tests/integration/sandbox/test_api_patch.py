"""Patch types and server-side apply through the official client and DynamicClient."""

from __future__ import annotations

import json

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from .rawhttp import send


@pytest.fixture
def team(core) -> str:
    core.create_namespace({"metadata": {"name": "team", "labels": {"keep": "1", "drop": "1"}}})
    return "team"


def test_strategic_merge_labels_and_finalizers(kube, core, team):
    patched = core.patch_namespace(
        team, {"metadata": {"labels": {"new": "2", "drop": None}, "finalizers": ["example.com/a"]}}
    )
    assert patched.metadata.labels == {"keep": "1", "new": "2", "kubernetes.io/metadata.name": team}
    again = core.patch_namespace(team, {"metadata": {"finalizers": ["example.com/b"]}})
    # finalizers merge as a set under strategic merge patch
    assert again.metadata.finalizers == ["example.com/a", "example.com/b"]
    sent = kube.requests("PATCH")[-1]
    assert sent.content_type == "application/strategic-merge-patch+json"
    removed = core.patch_namespace(
        team, {"metadata": {"$deleteFromPrimitiveList/finalizers": ["example.com/a"]}}
    )
    assert removed.metadata.finalizers == ["example.com/b"]


def test_json_patch(kube, core, team):
    ops = [
        {"op": "add", "path": "/metadata/labels/gpulease.io~1tier", "value": "h100-1g"},
        {"op": "remove", "path": "/metadata/labels/drop"},
        {"op": "test", "path": "/metadata/labels/keep", "value": "1"},
    ]
    patched = core.patch_namespace(team, ops)
    assert patched.metadata.labels["gpulease.io/tier"] == "h100-1g"
    assert "drop" not in patched.metadata.labels
    assert kube.requests("PATCH")[-1].content_type == "application/json-patch+json"
    with pytest.raises(ApiException) as err:
        core.patch_namespace(team, [{"op": "test", "path": "/metadata/labels/keep", "value": "2"}])
    assert err.value.status == 422
    with pytest.raises(ApiException) as err:
        core.patch_namespace(team, [{"op": "remove", "path": "/metadata/labels/absent"}])
    assert err.value.status == 422


def test_json_patch_with_stale_resource_version_conflicts(core, team):
    current = core.read_namespace(team).metadata.resource_version
    core.patch_namespace(team, {"metadata": {"labels": {"bump": "1"}}})
    with pytest.raises(ApiException) as err:
        core.patch_namespace(
            team,
            [
                {"op": "replace", "path": "/metadata/resourceVersion", "value": current},
                {"op": "add", "path": "/metadata/labels/x", "value": "y"},
            ],
        )
    assert err.value.status == 409


def test_merge_patch_replaces_lists(kube, core, team):
    core.patch_namespace(team, {"metadata": {"finalizers": ["a.io/x", "a.io/y"]}})
    patched = core.patch_namespace(
        team,
        {"metadata": {"finalizers": ["a.io/z"], "labels": {"keep": None}}},
        _content_type="application/merge-patch+json",
    )
    assert patched.metadata.finalizers == ["a.io/z"]
    assert "keep" not in patched.metadata.labels
    assert kube.requests("PATCH")[-1].content_type == "application/merge-patch+json"


def test_patch_of_missing_object_is_404(core):
    with pytest.raises(ApiException) as err:
        core.patch_namespace("missing", {"metadata": {"labels": {"a": "b"}}})
    assert err.value.status == 404


def test_no_op_write_keeps_resource_version(core, team):
    before = core.read_namespace(team).metadata.resource_version
    after = core.patch_namespace(team, {"metadata": {"labels": {"keep": "1"}}}).metadata.resource_version
    assert before == after


def test_status_subresource_is_separate(kube, core, team):
    core.patch_namespace(team, {"status": {"phase": "Terminating"}})
    assert kube.get("namespaces", team)["status"]["phase"] == "Active"


def test_server_side_apply_creates_then_updates(kube, dynamic, team):
    quotas = dynamic.resources.get(api_version="v1", kind="ResourceQuota")
    manifest = {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {"name": "gpu", "namespace": team, "labels": {"a": "1", "b": "1"}},
        "spec": {"hard": {"requests.nvidia.com/gpu": "2"}},
    }
    created = quotas.server_side_apply(body=manifest, field_manager="gpulease", force_conflicts=True)
    assert created.spec.hard["requests.nvidia.com/gpu"] == "2"
    request = kube.requests("PATCH")[-1]
    assert request.content_type == "application/apply-patch+yaml"
    assert (request.param("fieldManager"), request.param("force")) == ("gpulease", "true")
    assert request.status == 201
    manifest["metadata"]["labels"] = {"a": "1"}  # the manager stops applying label b
    manifest["spec"]["hard"]["requests.nvidia.com/gpu"] = "4"
    updated = quotas.server_side_apply(body=manifest, field_manager="gpulease", force_conflicts=True)
    as_dict = updated.to_dict()
    assert as_dict["spec"]["hard"]["requests.nvidia.com/gpu"] == "4"
    assert as_dict["metadata"]["labels"] == {"a": "1"}
    managers = {(m["manager"], m["operation"]) for m in as_dict["metadata"]["managedFields"]}
    assert ("gpulease", "Apply") in managers


def test_apply_replaces_an_atomic_struct_whole(kube, dynamic, team):
    # A LabelSelector is atomic: re-applying `podSelector: {}` after someone narrowed it to
    # one label must select every pod again, not keep the label (a granular merge would).
    policies = dynamic.resources.get(api_version="networking.k8s.io/v1", kind="NetworkPolicy")
    manifest = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "isolate", "namespace": team},
        "spec": {"podSelector": {}, "policyTypes": ["Ingress"]},
    }
    policies.server_side_apply(body=manifest, field_manager="gpulease", force_conflicts=True)
    narrowed = {"spec": {"podSelector": {"matchLabels": {"none": "x"}}}}
    policies.patch(
        body=narrowed, name="isolate", namespace=team, content_type="application/merge-patch+json"
    )
    repaired = policies.server_side_apply(body=manifest, field_manager="gpulease", force_conflicts=True)
    assert repaired.to_dict()["spec"]["podSelector"] == {}


def test_apply_conflicts_with_another_manager_unless_forced(kube, team):
    path = f"/api/v1/namespaces/{team}/configmaps/shared"
    config = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "shared"}, "data": {"k": "one"}}
    status, _, _ = send(
        kube.url, "PATCH", f"{path}?fieldManager=alice", config, content_type="application/apply-patch+yaml"
    )
    assert status == 201
    config["data"]["k"] = "two"
    status, _, body = send(
        kube.url, "PATCH", f"{path}?fieldManager=bob", config, content_type="application/apply-patch+yaml"
    )
    assert status == 409
    assert body["message"] == 'Apply failed with 1 conflict: conflict with "alice" using v1: .data.k'
    status, _, body = send(
        kube.url,
        "PATCH",
        f"{path}?fieldManager=bob&force=true",
        config,
        content_type="application/apply-patch+yaml",
    )
    assert status == 200 and body["data"]["k"] == "two"


def test_apply_that_creates_needs_create_as_well_as_patch(kube, team):
    path = f"/api/v1/namespaces/{team}/configmaps/applied"
    config = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "applied"}, "data": {"k": "one"}}
    apply_yaml = "application/apply-patch+yaml"
    kube.deny("create", "configmaps")
    status, _, body = send(kube.url, "PATCH", f"{path}?fieldManager=m", config, content_type=apply_yaml)
    assert status == 403
    assert body["message"] == (
        'configmaps "applied" is forbidden: User "sandbox-admin" cannot create resource "configmaps" '
        'in API group "" in the namespace "team"'
    )
    assert kube.get("configmaps", "applied", namespace=team) is None
    kube.clear_denials()
    status, _, _ = send(kube.url, "PATCH", f"{path}?fieldManager=m", config, content_type=apply_yaml)
    assert status == 201
    # Once the object exists, an apply is an update: `patch` alone is enough.
    kube.deny("create", "configmaps")
    config["data"]["k"] = "two"
    status, _, body = send(kube.url, "PATCH", f"{path}?fieldManager=m", config, content_type=apply_yaml)
    assert (status, body["data"]) == (200, {"k": "two"})
    kube.clear_denials()
    kube.deny("patch", "configmaps")
    status, _, _ = send(kube.url, "PATCH", f"{path}?fieldManager=m", config, content_type=apply_yaml)
    assert status == 403


def test_apply_needs_field_manager(kube, team):
    config = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}
    status, _, body = send(
        kube.url,
        "PATCH",
        f"/api/v1/namespaces/{team}/configmaps/c",
        config,
        content_type="application/apply-patch+yaml",
    )
    assert status == 422
    assert body["message"] == (
        'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch'
    )


def test_apply_accepts_yaml(kube, team):
    yaml_body = b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: y\ndata:\n  a: b\n"
    status, _, body = send(
        kube.url,
        "PATCH",
        f"/api/v1/namespaces/{team}/configmaps/y?fieldManager=m",
        yaml_body,
        content_type="application/apply-patch+yaml",
    )
    assert status == 201 and body["data"] == {"a": "b"}


def test_force_is_only_for_apply(kube, team):
    status, _, body = send(
        kube.url,
        "PATCH",
        f"/api/v1/namespaces/{team}?force=true",
        {"metadata": {}},
        content_type="application/merge-patch+json",
    )
    assert status == 422


def test_update_records_managed_fields_of_the_writer(core, team):
    patched = core.patch_namespace(team, {"metadata": {"labels": {"owner": "x"}}}, field_manager="labeller")
    entry = next(m for m in patched.metadata.managed_fields if m.manager == "labeller")
    assert entry.operation == "Update"
    assert "f:owner" in json.dumps(entry.fields_v1)


def test_dynamic_client_discovers_every_resource(dynamic):
    for api_version, kind in [
        ("v1", "Namespace"),
        ("v1", "Node"),
        ("v1", "Pod"),
        ("v1", "ResourceQuota"),
        ("v1", "LimitRange"),
        ("v1", "ConfigMap"),
        ("v1", "ServiceAccount"),
        ("rbac.authorization.k8s.io/v1", "RoleBinding"),
        ("rbac.authorization.k8s.io/v1", "ClusterRole"),
        ("networking.k8s.io/v1", "NetworkPolicy"),
        ("admissionregistration.k8s.io/v1", "MutatingAdmissionPolicy"),
        ("admissionregistration.k8s.io/v1beta1", "MutatingAdmissionPolicyBinding"),
        ("authorization.k8s.io/v1", "SelfSubjectAccessReview"),
    ]:
        assert dynamic.resources.get(api_version=api_version, kind=kind).kind == kind
    roles = dynamic.resources.get(api_version="rbac.authorization.k8s.io/v1", kind="ClusterRole")
    assert {"admin", "edit", "view", "cluster-admin"} <= {r.metadata.name for r in roles.get().items}


def test_limit_range_and_service_account(core, team):
    core.create_namespaced_limit_range(
        team,
        client.V1LimitRange(
            metadata=client.V1ObjectMeta(name="defaults"),
            spec=client.V1LimitRangeSpec(
                limits=[client.V1LimitRangeItem(type="Container", default={"cpu": "1", "memory": "2Gi"})]
            ),
        ),
    )
    stored = core.read_namespaced_limit_range("defaults", team)
    assert stored.spec.limits[0].default_request == {"cpu": "1", "memory": "2Gi"}
    assert core.read_namespaced_service_account("default", team).metadata.name == "default"


def test_strategic_merge_of_containers_by_name(core, team):
    pod = {
        "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "main", "image": "app:1"}, {"name": "sidecar", "image": "proxy:1"}]},
    }
    core.create_namespaced_pod(team, pod)
    patched = core.patch_namespaced_pod(
        "p", team, {"spec": {"containers": [{"name": "sidecar", "image": "proxy:2"}]}}
    )
    assert [(c.name, c.image) for c in patched.spec.containers] == [("main", "app:1"), ("sidecar", "proxy:2")]
    with pytest.raises(ApiException) as err:
        core.patch_namespaced_pod("p", team, {"spec": {"restartPolicy": "Never"}})
    assert err.value.status == 422
    assert "pod updates may not change fields other than" in err.value.body
