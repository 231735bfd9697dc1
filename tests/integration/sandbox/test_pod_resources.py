"""Pods with init containers and sidecars (LimitRanger defaults, KEP-753 effective requests),
and pods created with spec.nodeName, which the node's kubelet admits or rejects."""

from __future__ import annotations

import json

import pytest
from kubernetes.client.rest import ApiException

from .test_pods import gpu_pod, namespace, node_of, pinned

FULL = "gpu-h100-full-0"  # 8 whole GPUs, tier h100-full


def gpus(n: int) -> dict:
    return {"limits": {"nvidia.com/gpu": str(n)}}


def container(name: str, resources: dict | None = None, *, sidecar: bool = False) -> dict:
    c = {"name": name, "image": "nvcr.io/nvidia/cuda:12.4.0-base-ubuntu22.04", "resources": resources or {}}
    if sidecar:
        c["restartPolicy"] = "Always"
    return c


def pod(name: str, *, init: list[dict] = (), containers: list[dict], **spec) -> dict:
    return {
        "metadata": {"name": name},
        "spec": {"initContainers": list(init), "containers": containers, **spec},
    }


def used_gpus(core, ns: str) -> str:
    return core.read_namespaced_resource_quota("q", ns).status.used["requests.nvidia.com/gpu"]


def test_limit_ranger_defaults_and_bounds_init_containers_too(core):
    namespace(core, "cpu")
    core.create_namespaced_resource_quota(
        "cpu", {"metadata": {"name": "q"}, "spec": {"hard": {"requests.cpu": "8", "requests.memory": "8Gi"}}}
    )
    core.create_namespaced_limit_range(
        "cpu",
        {
            "metadata": {"name": "defaults"},
            "spec": {
                "limits": [
                    {
                        "type": "Container",
                        "default": {"cpu": "1", "memory": "1Gi"},
                        "defaultRequest": {"cpu": "500m", "memory": "512Mi"},
                        "max": {"cpu": "2"},
                    }
                ]
            },
        },
    )
    plain = pod("p", init=[container("setup"), container("proxy", sidecar=True)], containers=[container("c")])
    created = core.create_namespaced_pod("cpu", plain)  # the quota needs requests of every container
    for c in created.spec.init_containers + created.spec.containers:
        assert c.resources.requests == {"cpu": "500m", "memory": "512Mi"}, c.name
        assert c.resources.limits == {"cpu": "1", "memory": "1Gi"}, c.name
    greedy = pod("greedy", init=[container("setup", {"limits": {"cpu": "4"}})], containers=[container("c")])
    with pytest.raises(ApiException) as err:
        core.create_namespaced_pod("cpu", greedy)
    assert err.value.status == 403
    assert "maximum cpu usage per Container is 2, but limit is 4" in json.loads(err.value.body)["message"]


def test_sidecar_requests_add_to_the_app_containers(kube, core):
    pinned(core, "team", "h100-full")
    core.create_namespaced_resource_quota(
        "team", {"metadata": {"name": "q"}, "spec": {"hard": {"requests.nvidia.com/gpu": "8"}}}
    )
    # A sidecar runs beside the app for the pod's whole life: 1 + 7 = 8 GPUs, the whole node.
    served = pod(
        "served", init=[container("srv", gpus(1), sidecar=True)], containers=[container("c", gpus(7))]
    )
    core.create_namespaced_pod("team", served)
    assert node_of(kube, "team", "served") == FULL
    assert used_gpus(core, "team") == "8"
    with pytest.raises(ApiException) as err:
        core.create_namespaced_pod("team", gpu_pod("one-more"))
    assert (
        "exceeded quota: q, requested: requests.nvidia.com/gpu=1, used: requests.nvidia.com/gpu=8"
        in (json.loads(err.value.body)["message"])
    )
    pinned(core, "other", "h100-full")  # no quota there: the node decides
    core.create_namespaced_pod("other", gpu_pod("one-more"))
    status = core.read_namespaced_pod("one-more", "other").status
    assert status.phase == "Pending"
    assert (
        "1 Insufficient nvidia.com/gpu"
        in next(c for c in status.conditions if c.type == "PodScheduled").message
    )


def test_an_init_container_runs_beside_the_sidecars_started_before_it(core):
    namespace(core, "team")
    core.create_namespaced_resource_quota(
        "team", {"metadata": {"name": "q"}, "spec": {"hard": {"requests.nvidia.com/gpu": "100"}}}
    )
    # max(app 2 + sidecars 1 + 2, init 4 beside the 1 sidecar before it) = 5 (KEP-753).
    spec = pod(
        "p",
        init=[
            container("early", gpus(1), sidecar=True),
            container("warmup", gpus(4)),
            container("late", gpus(2), sidecar=True),
        ],
        containers=[container("c", gpus(2))],
        nodeSelector={"kubernetes.io/hostname": "cpu-0"},  # stays Pending; the quota counts it
    )
    core.create_namespaced_pod("team", spec)
    assert used_gpus(core, "team") == "5"
    spec["metadata"]["name"] = "q2"
    spec["spec"]["initContainers"][1]["resources"] = gpus(9)  # 9 + 1 beside it wins
    core.create_namespaced_pod("team", spec)
    assert used_gpus(core, "team") == "15"


def test_kubelet_rejects_a_named_node_without_room(kube, core):
    namespace(core, "direct")
    core.create_namespaced_pod("direct", gpu_pod("big", gpus=50, nodeName=FULL))
    status = core.read_namespaced_pod("big", "direct").status
    assert (status.phase, status.reason) == ("Failed", "OutOfnvidia.com/gpu")
    assert status.message == (
        "Pod was rejected: Node didn't have enough resource: nvidia.com/gpu, requested: 50, used: 0, capacity: 8"
    )
    core.create_namespaced_pod("direct", gpu_pod("fits", gpus=6, nodeName=FULL))
    core.create_namespaced_pod("direct", gpu_pod("late", gpus=3, nodeName=FULL))
    assert core.read_namespaced_pod("fits", "direct").status.phase == "Running"
    status = core.read_namespaced_pod("late", "direct").status
    assert (status.phase, status.reason) == ("Failed", "OutOfnvidia.com/gpu")
    assert "requested: 3, used: 6, capacity: 8" in status.message
    assert kube.get("pods", "late", namespace="direct")["spec"]["nodeName"] == FULL


def test_kubelet_rejects_a_named_node_its_selector_does_not_match(core):
    pinned(core, "team", "h100-1g")  # the namespace pins its pods to tier h100-1g
    core.create_namespaced_pod("team", gpu_pod("elsewhere", nodeName=FULL))
    status = core.read_namespaced_pod("elsewhere", "team").status
    assert (status.phase, status.reason) == ("Failed", "NodeAffinity")
    assert status.message == (
        "Pod was rejected: Predicate NodeAffinity failed: node(s) didn't match Pod's node affinity/selector"
    )
    core.create_namespaced_pod("team", gpu_pod("home", nodeName="gpu-h100-1g-1"))
    assert core.read_namespaced_pod("home", "team").status.phase == "Running"


def test_kubelet_ignores_cordons_but_not_no_execute_taints(core):
    namespace(core, "direct")
    core.patch_node(FULL, {"spec": {"unschedulable": True}})
    core.create_namespaced_pod("direct", gpu_pod("cordoned", nodeName=FULL))
    assert core.read_namespaced_pod("cordoned", "direct").status.phase == "Running"
    core.patch_node(
        "gpu-l40s-0", {"spec": {"taints": [{"key": "maintenance", "value": "now", "effect": "NoExecute"}]}}
    )
    core.create_namespaced_pod("direct", gpu_pod("tainted", nodeName="gpu-l40s-0"))
    status = core.read_namespaced_pod("tainted", "direct").status
    assert (status.phase, status.reason) == ("Failed", "TaintToleration")


def test_quota_counts_the_limits_of_init_containers_and_sidecars(core):
    namespace(core, "lim")
    core.create_namespaced_resource_quota(
        "lim", {"metadata": {"name": "q"}, "spec": {"hard": {"limits.cpu": "4", "limits.memory": "4Gi"}}}
    )
    both = {"limits": {"cpu": "1", "memory": "1Gi"}}
    # A sidecar's limits add to the app's (1 + 1); an ordinary init container's count only while
    # it runs, beside the sidecars before it (3, more than the 2 of the rest).
    core.create_namespaced_pod(
        "lim",
        pod(
            "p",
            init=[container("proxy", both, sidecar=True), container("setup", {"limits": {"cpu": "2", "memory": "1Gi"}})],
            containers=[container("c", both)],
        ),
    )
    used = core.read_namespaced_resource_quota("q", "lim").status.used
    assert (used["limits.cpu"], used["limits.memory"]) == ("3", "2Gi")
    with pytest.raises(ApiException) as err:
        core.create_namespaced_pod(
            "lim", pod("q2", init=[container("proxy", both, sidecar=True)], containers=[container("c", both)])
        )
    message = json.loads(err.value.body)["message"]
    assert "exceeded quota: q, requested: limits.cpu=2, used: limits.cpu=3, limited: limits.cpu=4" in message
