"""Pods: namespace pinning (PodNodeSelector, PodTolerationRestriction, MutatingAdmissionPolicy),
ResourceQuota with the real wording, requests defaulting, binding and Pending."""

from __future__ import annotations

import json

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from .waiting import wait_until

TIER = "gpulease.io/tier"
NODE_SELECTOR = "scheduler.alpha.kubernetes.io/node-selector"
DEFAULT_TOLERATIONS = "scheduler.alpha.kubernetes.io/defaultTolerations"
WHITELIST = "scheduler.alpha.kubernetes.io/tolerationsWhitelist"


def namespace(core, name: str, *, labels=None, annotations=None) -> None:
    core.create_namespace(
        {"metadata": {"name": name, "labels": labels or {}, "annotations": annotations or {}}}
    )


def pinned(core, name: str, tier: str, **annotations: str) -> None:
    namespace(core, name, labels={TIER: tier}, annotations={NODE_SELECTOR: f"{TIER}={tier}", **annotations})


def gpu_pod(name: str | None = None, gpus: int = 1, **spec) -> dict:
    meta = {"name": name} if name else {"generateName": "job-"}
    container = {
        "name": "c",
        "image": "nvcr.io/nvidia/cuda:12.4.0-base-ubuntu22.04",
        "resources": {"limits": {"nvidia.com/gpu": str(gpus)}},
    }
    return {"metadata": meta, "spec": {"containers": [container], **spec}}


def message(err: pytest.ExceptionInfo) -> str:
    return json.loads(err.value.body)["message"]


def node_of(kube, ns: str, name: str):
    return wait_until(lambda: kube.get("pods", name, namespace=ns)["spec"].get("nodeName"))


def test_pod_is_pinned_by_node_selector_annotation_and_bound(kube, core):
    pinned(core, "team", "h100-1g")
    created = core.create_namespaced_pod("team", gpu_pod("train"))
    assert created.spec.node_selector == {TIER: "h100-1g"}
    assert created.status.phase == "Pending"  # the create response precedes binding
    container = created.spec.containers[0]
    assert container.resources.requests == {"nvidia.com/gpu": "1"}  # defaulted from limits
    assert node_of(kube, "team", "train") == "gpu-h100-1g-0"
    pod = core.read_namespaced_pod("train", "team")
    assert pod.status.phase == "Running"
    assert {c.type: c.status for c in pod.status.conditions}["PodScheduled"] == "True"
    assert pod.status.container_statuses[0].ready is True
    on_node = core.list_pod_for_all_namespaces(field_selector="spec.nodeName=gpu-h100-1g-0")
    assert [p.metadata.name for p in on_node.items] == ["train"]


def test_node_selector_conflict_is_forbidden(core):
    pinned(core, "team", "h100-1g")
    with pytest.raises(ApiException) as err:
        core.create_namespaced_pod("team", gpu_pod("sneaky", nodeSelector={TIER: "h100-full"}))
    assert err.value.status == 403
    assert message(err) == (
        'pods "sneaky" is forbidden: pod node label selector conflicts with its namespace node label selector'
    )


def test_default_tolerations_are_merged_and_whitelist_enforced(kube, core):
    toleration = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    pinned(
        core,
        "team",
        "h100-full",
        **{DEFAULT_TOLERATIONS: json.dumps([toleration]), WHITELIST: json.dumps([toleration])},
    )
    core.patch_node(
        "gpu-h100-full-0",
        {"spec": {"taints": [{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}]}},
    )
    created = core.create_namespaced_pod("team", gpu_pod("ok"))
    keys = [t.key for t in created.spec.tolerations]
    assert "nvidia.com/gpu" in keys
    assert "node.kubernetes.io/not-ready" in keys and "node.kubernetes.io/unreachable" in keys
    assert node_of(kube, "team", "ok") == "gpu-h100-full-0"
    bad = gpu_pod("bad", tolerations=[{"key": "other", "operator": "Exists"}])
    with pytest.raises(ApiException) as err:
        core.create_namespaced_pod("team", bad)
    assert err.value.status == 403
    assert message(err) == (
        'pods "bad" is forbidden: pod tolerations (possibly merged with namespace default tolerations) '
        "conflict with its namespace whitelist"
    )


def test_untolerated_taint_leaves_pod_pending(kube, core):
    pinned(core, "team", "h100-full")
    core.patch_node(
        "gpu-h100-full-0",
        {"spec": {"taints": [{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}]}},
    )
    core.create_namespaced_pod("team", gpu_pod("waits"))
    pod = core.read_namespaced_pod("waits", "team")
    condition = next(c for c in pod.status.conditions if c.type == "PodScheduled")
    assert (pod.status.phase, condition.status, condition.reason) == ("Pending", "False", "Unschedulable")
    assert "1 node(s) had untolerated taint {nvidia.com/gpu: present}" in condition.message
    assert "6 node(s) didn't match Pod's node affinity/selector" in condition.message
    assert condition.message.startswith("0/7 nodes are available: ")
    core.patch_node("gpu-h100-full-0", {"spec": {"taints": None}})
    assert node_of(kube, "team", "waits") == "gpu-h100-full-0"


def test_a_node_tainted_prefer_no_schedule_is_taken_last(kube, core):
    pinned(core, "team", "h100-1g")
    draining = {"key": "gpulease.io/draining", "value": "h100-full", "effect": "PreferNoSchedule"}
    core.patch_node("gpu-h100-1g-0", {"spec": {"taints": [draining]}})
    core.create_namespaced_pod("team", gpu_pod("avoids"))
    assert node_of(kube, "team", "avoids") == "gpu-h100-1g-1"
    # A pod that tolerates the taint sees no difference: the first node by name.
    core.create_namespaced_pod("team", gpu_pod("tolerates", tolerations=[{"key": "gpulease.io/draining", "operator": "Exists"}]))
    assert node_of(kube, "team", "tolerates") == "gpu-h100-1g-0"
    # When only the tainted node has room, it is used: the taint is a preference.
    room = int(kube.get("nodes", "gpu-h100-1g-1")["status"]["allocatable"]["nvidia.com/gpu"]) - 1
    core.create_namespaced_pod("team", gpu_pod("fills", gpus=room))
    assert node_of(kube, "team", "fills") == "gpu-h100-1g-1"
    core.create_namespaced_pod("team", gpu_pod("overflow"))
    assert node_of(kube, "team", "overflow") == "gpu-h100-1g-0"


def test_insufficient_gpus_pending_until_a_pod_is_deleted(kube, core):
    pinned(core, "team", "h100-full")
    core.create_namespaced_pod("team", gpu_pod("big", gpus=8))
    assert node_of(kube, "team", "big") == "gpu-h100-full-0"
    core.create_namespaced_pod("team", gpu_pod("next", gpus=1))
    pod = core.read_namespaced_pod("next", "team")
    condition = next(c for c in pod.status.conditions if c.type == "PodScheduled")
    assert "1 Insufficient nvidia.com/gpu" in condition.message
    assert pod.spec.node_name is None
    core.delete_namespaced_pod("big", "team")
    assert node_of(kube, "team", "next") == "gpu-h100-full-0"


def test_finished_pod_frees_its_gpus(kube, core):
    pinned(core, "team", "h100-full")
    core.create_namespaced_pod("team", gpu_pod("first", gpus=8))
    core.create_namespaced_pod("team", gpu_pod("second", gpus=8))
    assert kube.get("pods", "second", namespace="team")["status"]["phase"] == "Pending"
    kube.set_pod_phase("team", "first", "Succeeded")
    assert node_of(kube, "team", "second") == "gpu-h100-full-0"


def test_cordoned_node_is_not_used(kube, core):
    pinned(core, "team", "h100-full")
    core.patch_node("gpu-h100-full-0", {"spec": {"unschedulable": True}})
    core.create_namespaced_pod("team", gpu_pod("p"))
    condition = next(
        c for c in core.read_namespaced_pod("p", "team").status.conditions if c.type == "PodScheduled"
    )
    assert "1 node(s) were unschedulable" in condition.message
    core.patch_node("gpu-h100-full-0", {"spec": {"unschedulable": False}})
    assert node_of(kube, "team", "p") == "gpu-h100-full-0"


def test_pod_with_node_name_runs_there(kube, core):
    namespace(core, "direct")
    core.create_namespaced_pod("direct", gpu_pod("p", nodeName="gpu-l40s-1"))
    assert kube.get("pods", "p", namespace="direct")["status"]["phase"] == "Running"


def test_extended_resource_request_must_equal_limit(core):
    namespace(core, "bad")
    pod = gpu_pod("p")
    pod["spec"]["containers"][0]["resources"]["requests"] = {"nvidia.com/gpu": "2"}
    with pytest.raises(ApiException) as err:
        core.create_namespaced_pod("bad", pod)
    assert err.value.status == 422
    assert "must be equal to nvidia.com/gpu limit of 1" in message(err)


def test_gpu_quota_with_real_wording(kube, core):
    pinned(core, "team", "h100-1g")
    core.create_namespaced_resource_quota(
        "team",
        {"metadata": {"name": "gpulease"}, "spec": {"hard": {"requests.nvidia.com/gpu": "2", "pods": "10"}}},
    )
    core.create_namespaced_pod("team", gpu_pod("a"))
    core.create_namespaced_pod("team", gpu_pod("b"))
    quota = core.read_namespaced_resource_quota("gpulease", "team")
    assert quota.status.hard == {"requests.nvidia.com/gpu": "2", "pods": "10"}
    assert quota.status.used == {"requests.nvidia.com/gpu": "2", "pods": "2"}
    with pytest.raises(ApiException) as err:
        core.create_namespaced_pod("team", gpu_pod("c"))
    assert err.value.status == 403
    assert message(err) == (
        'pods "c" is forbidden: exceeded quota: gpulease, requested: requests.nvidia.com/gpu=1, '
        "used: requests.nvidia.com/gpu=2, limited: requests.nvidia.com/gpu=2"
    )
    core.create_namespaced_pod(
        "team",
        {"metadata": {"name": "cpu-only"}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}},
    )
    core.delete_namespaced_pod("a", "team")
    assert (
        core.read_namespaced_resource_quota("gpulease", "team").status.used["requests.nvidia.com/gpu"] == "1"
    )
    core.create_namespaced_pod("team", gpu_pod("c"))


def test_quota_message_names_the_generated_pod(core):
    pinned(core, "team", "h100-1g")
    core.create_namespaced_resource_quota(
        "team", {"metadata": {"name": "q"}, "spec": {"hard": {"requests.nvidia.com/gpu": "0"}}}
    )
    with pytest.raises(ApiException) as err:
        core.create_namespaced_pod("team", gpu_pod(None))
    assert message(err).startswith('pods "job-')
    assert (
        "exceeded quota: q, requested: requests.nvidia.com/gpu=1, used: requests.nvidia.com/gpu=0"
        in message(err)
    )


def test_cpu_quota_needs_requests_and_limit_range_fills_them(core):
    namespace(core, "cpu")
    core.create_namespaced_resource_quota(
        "cpu", {"metadata": {"name": "q"}, "spec": {"hard": {"requests.cpu": "2", "requests.memory": "4Gi"}}}
    )
    plain = {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
    with pytest.raises(ApiException) as err:
        core.create_namespaced_pod("cpu", plain)
    assert message(err) == (
        'pods "p" is forbidden: failed quota: q: must specify requests.cpu for: c; requests.memory for: c'
    )
    core.create_namespaced_limit_range(
        "cpu",
        {
            "metadata": {"name": "defaults"},
            "spec": {
                "limits": [
                    {
                        "type": "Container",
                        "default": {"cpu": "1500m", "memory": "3Gi"},
                        "defaultRequest": {"cpu": "1", "memory": "1Gi"},
                    }
                ]
            },
        },
    )
    created = core.create_namespaced_pod("cpu", plain)
    assert created.spec.containers[0].resources.requests == {"cpu": "1", "memory": "1Gi"}
    assert created.spec.containers[0].resources.limits == {"cpu": "1500m", "memory": "3Gi"}
    plain["metadata"]["name"] = "p2"
    core.create_namespaced_pod("cpu", plain)
    plain["metadata"]["name"] = "p3"
    with pytest.raises(ApiException) as err:
        core.create_namespaced_pod("cpu", plain)
    assert message(err) == (
        'pods "p3" is forbidden: exceeded quota: q, requested: requests.cpu=1, used: requests.cpu=2, limited: requests.cpu=2'
    )
    used = core.read_namespaced_resource_quota("q", "cpu").status.used
    assert used == {"requests.cpu": "2", "requests.memory": "2Gi"}


TIER_OF_NAMESPACE = 'namespaceObject.metadata.labels["gpulease.io/tier"]'
# nodeSelector is an atomic map: a JSON patch adds the key, keeping the pod's other keys.
POLICY_EXPRESSION = (
    "has(object.spec.nodeSelector)"
    ' ? [JSONPatch{op: "add", path: "/spec/nodeSelector/" + jsonpatch.escapeKey("gpulease.io/tier"),'
    f" value: {TIER_OF_NAMESPACE}}}]"
    f' : [JSONPatch{{op: "add", path: "/spec/nodeSelector", value: {{"gpulease.io/tier": {TIER_OF_NAMESPACE}}}}}]'
)
APPLY_NODE_SELECTOR = f'Object{{spec: Object.spec{{nodeSelector: {{"gpulease.io/tier": {TIER_OF_NAMESPACE}}}}}}}'


def tier_policy(
    version: str = "v1",
    failure_policy: str = "Fail",
    expression: str = POLICY_EXPRESSION,
    patch_type: str = "JSONPatch",
) -> dict:
    field = "jsonPatch" if patch_type == "JSONPatch" else "applyConfiguration"
    return {
        "apiVersion": f"admissionregistration.k8s.io/{version}",
        "kind": "MutatingAdmissionPolicy",
        "metadata": {"name": "gpulease-tier-pinning"},
        "spec": {
            "matchConstraints": {
                "resourceRules": [
                    {
                        "apiGroups": [""],
                        "apiVersions": ["v1"],
                        "operations": ["CREATE"],
                        "resources": ["pods"],
                    }
                ]
            },
            "failurePolicy": failure_policy,
            "reinvocationPolicy": "Never",
            "mutations": [{"patchType": patch_type, field: {"expression": expression}}],
        },
    }


def tier_binding(version: str = "v1", selector: dict | None = None) -> dict:
    spec: dict = {"policyName": "gpulease-tier-pinning"}
    if selector is not None:
        spec["matchResources"] = {"namespaceSelector": selector}
    return {
        "apiVersion": f"admissionregistration.k8s.io/{version}",
        "kind": "MutatingAdmissionPolicyBinding",
        "metadata": {"name": "gpulease-tier-pinning"},
        "spec": spec,
    }


@pytest.mark.parametrize("version", ["v1", "v1beta1"])
def test_mutating_admission_policy_pins_pods_to_the_namespace_tier(kube, api_client, core, version):
    api = getattr(client, f"Admissionregistration{version.capitalize()}Api")(api_client)
    api.create_mutating_admission_policy(tier_policy(version))
    selector = {"matchExpressions": [{"key": TIER, "operator": "Exists"}]}
    api.create_mutating_admission_policy_binding(tier_binding(version, selector))
    namespace(core, "mapped", labels={TIER: "h100-3g"})
    created = core.create_namespaced_pod("mapped", gpu_pod("p"))
    assert created.spec.node_selector == {TIER: "h100-3g"}
    assert node_of(kube, "mapped", "p") == "gpu-h100-3g-0"
    namespace(core, "unlabelled")  # outside the binding's selector: untouched
    plain = core.create_namespaced_pod("unlabelled", gpu_pod("q"))
    assert plain.spec.node_selector is None


def test_mutating_policy_merges_into_an_existing_node_selector(api_client, core):
    api = client.AdmissionregistrationV1Api(api_client)
    api.create_mutating_admission_policy(tier_policy())
    api.create_mutating_admission_policy_binding(tier_binding())
    namespace(core, "mapped", labels={TIER: "h100-1g"})
    created = core.create_namespaced_pod("mapped", gpu_pod("p", nodeSelector={"kubernetes.io/os": "linux"}))
    assert created.spec.node_selector == {"kubernetes.io/os": "linux", TIER: "h100-1g"}
    # A pod that names another tier is moved to its namespace's: "add" replaces the key.
    other = core.create_namespaced_pod("mapped", gpu_pod("q", nodeSelector={TIER: "h100-full"}))
    assert other.spec.node_selector == {TIER: "h100-1g"}


def test_an_apply_configuration_may_not_set_an_atomic_map(api_client, core):
    # As on a real API server: nodeSelector is an atomic map, so merging into it is refused,
    # and the pod with it (failurePolicy Fail), whether or not the pod has a nodeSelector.
    api = client.AdmissionregistrationV1Api(api_client)
    api.create_mutating_admission_policy(
        tier_policy(expression=APPLY_NODE_SELECTOR, patch_type="ApplyConfiguration")
    )
    api.create_mutating_admission_policy_binding(tier_binding())
    namespace(core, "atomic", labels={TIER: "h100-1g"})
    for pod in (gpu_pod("p"), gpu_pod("p", nodeSelector={"kubernetes.io/os": "linux"})):
        with pytest.raises(ApiException) as err:
            core.create_namespaced_pod("atomic", pod)
        assert err.value.status == 403
        assert (
            "invalid ApplyConfiguration: may not mutate atomic arrays, maps or structs: .spec.nodeSelector"
            in message(err)
        )
    api.patch_mutating_admission_policy("gpulease-tier-pinning", {"spec": {"failurePolicy": "Ignore"}})
    assert core.create_namespaced_pod("atomic", gpu_pod("p")).spec.node_selector is None


def test_an_apply_configuration_merges_granular_maps(api_client, core):
    api = client.AdmissionregistrationV1Api(api_client)
    expression = f'Object{{metadata: Object.metadata{{labels: {{"tier": {TIER_OF_NAMESPACE}}}}}}}'
    api.create_mutating_admission_policy(tier_policy(expression=expression, patch_type="ApplyConfiguration"))
    api.create_mutating_admission_policy_binding(tier_binding())
    namespace(core, "labelled", labels={TIER: "h100-2g"})
    pod = gpu_pod("p")
    pod["metadata"]["labels"] = {"app": "train"}
    created = core.create_namespaced_pod("labelled", pod)
    assert created.metadata.labels == {"app": "train", "tier": "h100-2g"}


def test_a_json_patch_that_cannot_apply_follows_the_failure_policy(api_client, core):
    api = client.AdmissionregistrationV1Api(api_client)
    expression = '[JSONPatch{op: "remove", path: "/spec/nodeSelector"}]'
    api.create_mutating_admission_policy(tier_policy(expression=expression))
    api.create_mutating_admission_policy_binding(tier_binding())
    namespace(core, "unpatched", labels={TIER: "h100-2g"})
    with pytest.raises(ApiException) as err:
        core.create_namespaced_pod("unpatched", gpu_pod("p"))
    assert err.value.status == 403 and "JSON Patch:" in message(err)


def test_mutating_policy_errors_follow_the_failure_policy(api_client, core):
    api = client.AdmissionregistrationV1Api(api_client)
    api.create_mutating_admission_policy(tier_policy())
    api.create_mutating_admission_policy_binding(tier_binding())  # no selector: every namespace
    namespace(core, "plain")
    with pytest.raises(ApiException) as err:
        core.create_namespaced_pod("plain", gpu_pod("p"))
    assert err.value.status == 403
    assert "no such key: gpulease.io/tier" in message(err)
    assert "admission policy 'gpulease-tier-pinning' with binding 'gpulease-tier-pinning' failed" in message(
        err
    )
    api.patch_mutating_admission_policy("gpulease-tier-pinning", {"spec": {"failurePolicy": "Ignore"}})
    assert core.create_namespaced_pod("plain", gpu_pod("p")).spec.node_selector is None


def test_mutating_policy_is_checked_strictly_on_create(kube):
    from .rawhttp import send

    path = "/apis/admissionregistration.k8s.io/v1/mutatingadmissionpolicies"
    strategic = tier_policy()
    strategic["spec"]["mutations"] = [{"patchType": "StrategicMerge", "jsonPatch": {"expression": "[]"}}]
    status, _, body = send(kube.url, "POST", path, strategic)
    assert status == 422 and 'spec.mutations[0].patchType: Unsupported value: "StrategicMerge"' in body["message"]
    comprehension = tier_policy(
        expression="Object{spec: Object.spec{containers: object.spec.containers.map(c, c)}}",
        patch_type="ApplyConfiguration",
    )
    status, _, body = send(kube.url, "POST", path, comprehension)
    assert status == 422 and "compilation failed" in body["message"]
    with_params = tier_policy()
    with_params["spec"]["paramKind"] = {"apiVersion": "v1", "kind": "ConfigMap"}
    status, _, body = send(kube.url, "POST", path, with_params)
    assert status == 422 and "params are not supported" in body["message"]


def test_mutating_policy_type_path_and_fields_are_checked(api_client, core):
    api = client.AdmissionregistrationV1Api(api_client)
    api.create_mutating_admission_policy(
        tier_policy(expression='Object{spec: Object.spec{colour: "blue"}}', patch_type="ApplyConfiguration")
    )
    api.create_mutating_admission_policy_binding(tier_binding())
    namespace(core, "typed", labels={TIER: "h100-1g"})
    with pytest.raises(ApiException) as err:
        core.create_namespaced_pod("typed", gpu_pod("p"))
    assert "field 'colour' is not in Object.spec" in message(err)


def test_mutating_policy_with_generate_name(kube, api_client, core):
    api = client.AdmissionregistrationV1Api(api_client)
    api.create_mutating_admission_policy(tier_policy())
    api.create_mutating_admission_policy_binding(tier_binding())
    namespace(core, "gen", labels={TIER: "l40s-shared"})
    created = core.create_namespaced_pod("gen", gpu_pod(None))
    assert created.metadata.name.startswith("job-")
    assert node_of(kube, "gen", created.metadata.name).startswith("gpu-l40s-")


def test_concurrent_creates_never_exceed_the_quota(kube, core):
    from concurrent.futures import ThreadPoolExecutor

    pinned(core, "race", "h100-1g")
    core.create_namespaced_resource_quota(
        "race", {"metadata": {"name": "q"}, "spec": {"hard": {"requests.nvidia.com/gpu": "3"}}}
    )

    def create(i: int) -> int:
        try:
            core.create_namespaced_pod("race", gpu_pod(f"p{i}"))
            return 201
        except ApiException as err:
            return err.status

    with ThreadPoolExecutor(max_workers=10) as pool:
        results = list(pool.map(create, range(10)))
    assert sorted(results) == [201] * 3 + [403] * 7
    assert core.read_namespaced_resource_quota("q", "race").status.used == {"requests.nvidia.com/gpu": "3"}
