"""Metadata, error codes and their Status bodies, through the official client."""

from __future__ import annotations

import json

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from sandbox.kube import KubeSandbox

from .rawhttp import send
from .waiting import wait_until


def status_of(exc: ApiException) -> dict:
    body = json.loads(exc.body)
    assert body["kind"] == "Status"
    assert body["status"] == "Failure"
    assert body["code"] == exc.status
    return body


def ns(name: str, **labels: str) -> client.V1Namespace:
    return client.V1Namespace(metadata=client.V1ObjectMeta(name=name, labels=labels or None))


def test_create_sets_metadata_and_namespace_defaults(core):
    first = core.create_namespace(ns("team-a"))
    second = core.create_namespace(ns("team-b"))
    assert first.metadata.uid and first.metadata.creation_timestamp
    assert isinstance(first.metadata.resource_version, str)
    assert int(second.metadata.resource_version) > int(first.metadata.resource_version)
    assert first.spec.finalizers == ["kubernetes"]
    assert first.status.phase == "Active"
    assert first.metadata.labels["kubernetes.io/metadata.name"] == "team-a"
    names = {n.metadata.name for n in core.list_namespace().items}
    assert {"default", "kube-system", "kube-public", "team-a", "team-b"} <= names


def test_generate_name_and_generation(core, api_client):
    core.create_namespace(ns("gen"))
    cm = core.create_namespaced_config_map(
        "gen", client.V1ConfigMap(metadata=client.V1ObjectMeta(generate_name="cfg-"), data={"a": "b"})
    )
    assert cm.metadata.name.startswith("cfg-") and len(cm.metadata.name) == len("cfg-") + 5
    net = client.NetworkingV1Api(api_client)
    policy = {"metadata": {"name": "p"}, "spec": {"podSelector": {}, "policyTypes": ["Ingress"]}}
    created = net.create_namespaced_network_policy("gen", policy)
    assert created.metadata.generation == 1
    patched = net.patch_namespaced_network_policy(
        "p", "gen", {"spec": {"policyTypes": ["Ingress", "Egress"]}}
    )
    assert patched.metadata.generation == 2


def test_not_found(core):
    with pytest.raises(ApiException) as err:
        core.read_namespace("nope")
    body = status_of(err.value)
    assert err.value.status == 404
    assert body["reason"] == "NotFound"
    assert body["message"] == 'namespaces "nope" not found'
    assert body["details"] == {"name": "nope", "kind": "namespaces"}


def test_not_found_in_group_names_the_group(rbac):
    with pytest.raises(ApiException) as err:
        rbac.read_namespaced_role_binding("x", "default")
    assert status_of(err.value)["message"] == 'rolebindings.rbac.authorization.k8s.io "x" not found'


def test_already_exists(core):
    core.create_namespace(ns("dup"))
    with pytest.raises(ApiException) as err:
        core.create_namespace(ns("dup"))
    body = status_of(err.value)
    assert (err.value.status, body["reason"]) == (409, "AlreadyExists")
    assert body["message"] == 'namespaces "dup" already exists'


def test_stale_put_conflicts(core):
    created = core.create_namespace(ns("stale"))
    fresh = core.read_namespace("stale")
    fresh.metadata.labels["a"] = "1"
    core.replace_namespace("stale", fresh)
    created.metadata.labels["b"] = "2"
    with pytest.raises(ApiException) as err:
        core.replace_namespace("stale", created)
    body = status_of(err.value)
    assert (err.value.status, body["reason"]) == (409, "Conflict")
    assert body["message"] == (
        'Operation cannot be fulfilled on namespaces "stale": the object has been modified; '
        "please apply your changes to the latest version and try again"
    )


def test_put_without_resource_version_is_unconditional(core):
    core.create_namespace(ns("uncond"))
    body = ns("uncond", x="y")
    assert core.replace_namespace("uncond", body).metadata.labels["x"] == "y"


def test_invalid_name(core):
    with pytest.raises(ApiException) as err:
        core.create_namespace(ns("Bad_Name"))
    body = status_of(err.value)
    assert (err.value.status, body["reason"]) == (422, "Invalid")
    assert body["message"].startswith(
        'Namespace "Bad_Name" is invalid: metadata.name: Invalid value: "Bad_Name": '
    )
    assert "RFC 1123 label" in body["message"]
    assert body["details"]["causes"][0]["field"] == "metadata.name"


def test_invalid_label_value(core):
    with pytest.raises(ApiException) as err:
        core.create_namespace(ns("lbl", tier="not ok!"))
    assert err.value.status == 422
    assert "metadata.labels: Invalid value" in status_of(err.value)["message"]


def test_changed_role_ref_is_invalid(core, rbac):
    core.create_namespace(ns("rb"))
    binding = {
        "metadata": {"name": "owner"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"},
        "subjects": [{"kind": "User", "name": "alice", "apiGroup": "rbac.authorization.k8s.io"}],
    }
    rbac.create_namespaced_role_binding("rb", binding)
    with pytest.raises(ApiException) as err:
        rbac.patch_namespaced_role_binding("owner", "rb", {"roleRef": {"name": "view"}})
    body = status_of(err.value)
    assert err.value.status == 422
    assert body["message"] == (
        'RoleBinding.rbac.authorization.k8s.io "owner" is invalid: roleRef: Invalid value: '
        'rbac.RoleRef{APIGroup:"rbac.authorization.k8s.io", Kind:"ClusterRole", Name:"view"}: '
        "cannot change roleRef"
    )
    # Subjects may change.
    patched = rbac.patch_namespaced_role_binding(
        "owner",
        "rb",
        {"subjects": [{"kind": "Group", "name": "team", "apiGroup": "rbac.authorization.k8s.io"}]},
    )
    assert patched.subjects[0].name == "team"


def test_missing_required_field_is_invalid(kube, core):
    core.create_namespace(ns("req"))
    path = "/apis/rbac.authorization.k8s.io/v1/namespaces/req/rolebindings"
    status, _, body = send(kube.url, "POST", path, {"metadata": {"name": "x"}, "subjects": []})
    assert status == 422
    assert "roleRef: Required value" in body["message"]


def test_body_namespace_must_match_url(core):
    core.create_namespace(ns("one"))
    cm = client.V1ConfigMap(metadata=client.V1ObjectMeta(name="c", namespace="two"))
    with pytest.raises(ApiException) as err:
        core.create_namespaced_config_map("one", cm)
    body = status_of(err.value)
    assert (err.value.status, body["reason"]) == (400, "BadRequest")
    assert body["message"] == (
        "the namespace of the provided object does not match the namespace sent on the request"
    )


def test_create_in_missing_namespace(core):
    with pytest.raises(ApiException) as err:
        core.create_namespaced_config_map("ghost", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="c")))
    assert err.value.status == 404
    assert status_of(err.value)["message"] == 'namespaces "ghost" not found'


def test_create_in_terminating_namespace_is_forbidden(core):
    core.create_namespace(ns("ending"))
    # A finalizer on its content keeps the namespace Terminating.
    core.create_namespaced_config_map(
        "ending",
        client.V1ConfigMap(metadata=client.V1ObjectMeta(name="held", finalizers=["example.com/hold"])),
    )
    core.delete_namespace("ending")
    with pytest.raises(ApiException) as err:
        core.create_namespaced_config_map(
            "ending", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="c"))
        )
    body = status_of(err.value)
    assert (err.value.status, body["reason"]) == (403, "Forbidden")
    assert body["message"] == (
        'configmaps "c" is forbidden: unable to create new content in namespace ending '
        "because it is being terminated"
    )


def test_unknown_patch_type(kube, core):
    core.create_namespace(ns("p415"))
    patch = {"metadata": {"labels": {"a": "b"}}}
    status, _, body = send(
        kube.url, "PATCH", "/api/v1/namespaces/p415", patch, content_type="application/xml"
    )
    assert (status, body["reason"]) == (415, "UnsupportedMediaType")
    assert body["message"].startswith("the body of the request was in an unknown format")


def test_strict_field_validation_rejects_unknown_fields(kube):
    body = {"metadata": {"name": "strict"}, "spec": {"finalizers": [], "colour": "blue"}}
    status, _, reply = send(kube.url, "POST", "/api/v1/namespaces?fieldValidation=Strict", body)
    message = reply["message"]
    assert (status, reply["reason"]) == (400, "BadRequest")
    assert message == (
        'Namespace in version "v1" cannot be handled as a Namespace: strict decoding error: '
        'unknown field "spec.colour"'
    )


def test_default_field_validation_warns_and_drops(kube):
    body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "warned"}, "colour": "blue"}
    status, headers, _ = send(kube.url, "POST", "/api/v1/namespaces", body)
    assert status == 201
    assert headers["Warning"] == '299 - "unknown field \\"colour\\""'
    assert "colour" not in kube.get("namespaces", "warned")
    status, headers, _ = send(
        kube.url,
        "POST",
        "/api/v1/namespaces?fieldValidation=Ignore",
        {"metadata": {"name": "ignored"}, "colour": "red"},
    )
    assert status == 201 and "Warning" not in headers


def test_wrong_value_type_is_bad_request(kube):
    body = {"metadata": {"name": "typed", "labels": ["not", "a", "map"]}}
    status, _, reply = send(kube.url, "POST", "/api/v1/namespaces", body)
    assert status == 400
    assert "cannot be handled as a Namespace" in reply["message"]


def test_quantities_are_stored_canonical(core):
    core.create_namespace(ns("q"))
    quota = {
        "metadata": {"name": "q"},
        "spec": {"hard": {"requests.cpu": "1000m", "requests.memory": "1024Mi", "pods": "10"}},
    }
    created = core.create_namespaced_resource_quota("q", quota)
    assert created.spec.hard == {"requests.cpu": "1", "requests.memory": "1Gi", "pods": "10"}


def test_extended_resource_quota_needs_requests_prefix(core):
    core.create_namespace(ns("q2"))
    with pytest.raises(ApiException) as err:
        core.create_namespaced_resource_quota(
            "q2", {"metadata": {"name": "q"}, "spec": {"hard": {"nvidia.com/gpu": "1"}}}
        )
    assert err.value.status == 422
    assert "spec.hard[nvidia.com/gpu]" in status_of(err.value)["message"]


def test_dry_run_stores_nothing(core, kube):
    result = core.create_namespace(ns("dry"), dry_run="All")
    assert result.metadata.name == "dry" and result.metadata.uid
    assert kube.get("namespaces", "dry") is None
    core.create_namespace(ns("wet"))
    core.patch_namespace("wet", {"metadata": {"labels": {"x": "1"}}}, dry_run="All")
    core.delete_namespace("wet", dry_run="All")
    stored = kube.get("namespaces", "wet")
    assert "x" not in stored["metadata"]["labels"] and "deletionTimestamp" not in stored["metadata"]


def test_delete_preconditions(core):
    core.create_namespace(ns("pre"))
    with pytest.raises(ApiException) as err:
        core.delete_namespace(
            "pre", body=client.V1DeleteOptions(preconditions=client.V1Preconditions(uid="nope"))
        )
    assert err.value.status == 409
    assert "Precondition failed: UID in precondition: nope" in status_of(err.value)["message"]


def test_method_not_allowed_on_access_reviews(kube):
    status, _, body = send(kube.url, "GET", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews")
    assert (status, body["reason"]) == (405, "MethodNotAllowed")


def test_unknown_path_is_404(kube):
    status, _, body = send(kube.url, "GET", "/api/v1/widgets")
    assert status == 404
    assert body["message"] == "the server could not find the requested resource"


def test_self_subject_access_review(kube, api_client):
    authz = client.AuthorizationV1Api(api_client)

    def review(verb: str, resource: str, namespace: str = "") -> bool:
        body = client.V1SelfSubjectAccessReview(
            spec=client.V1SelfSubjectAccessReviewSpec(
                resource_attributes=client.V1ResourceAttributes(
                    verb=verb, resource=resource, namespace=namespace
                )
            )
        )
        return authz.create_self_subject_access_review(body).status.allowed

    assert review("delete", "namespaces")
    kube.deny("delete", "namespaces")
    assert not review("delete", "namespaces")
    assert review("create", "namespaces")
    # Denials are enforced on the request itself, with RBAC's wording.
    core = client.CoreV1Api(api_client)
    core.create_namespace(ns("kept"))
    with pytest.raises(ApiException) as err:
        core.delete_namespace("kept")
    assert err.value.status == 403
    assert status_of(err.value)["message"] == (
        'namespaces "kept" is forbidden: User "sandbox-admin" cannot delete resource "namespaces" '
        'in API group "" at the cluster scope'
    )
    kube.clear_denials()
    core.delete_namespace("kept")
    wait_until(lambda: kube.get("namespaces", "kept") is None)


def test_deny_can_be_review_only(kube, api_client):
    kube.deny("list", "pods", namespace="team", enforce=False)
    authz = client.AuthorizationV1Api(api_client)
    body = {"spec": {"resourceAttributes": {"verb": "list", "resource": "pods", "namespace": "team"}}}
    assert authz.create_self_subject_access_review(body).status.allowed is False
    client.CoreV1Api(api_client).list_pod_for_all_namespaces()  # not enforced


def test_sandbox_python_api_creates_through_admission(kube: KubeSandbox):
    created = kube.create("namespaces", {"metadata": {"name": "seeded"}})
    assert created["status"]["phase"] == "Active"
    assert kube.get("serviceaccounts", "default", namespace="seeded") is not None
