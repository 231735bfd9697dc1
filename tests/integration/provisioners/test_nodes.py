"""Counting the GPU pods on a node, as a move checks before touching it: a GPU held by a
sidecar or an init container counts like one held by an app container."""

from __future__ import annotations

import pytest

from provisioners import nodes
from sandbox.kube import KubeSandbox

NODE = "gpu-h100-1g-0"
GPU = {"limits": {"nvidia.com/gpu": "1"}}


def _pod(kube: KubeSandbox, name: str, *, init: list[dict] = (), containers: list[dict]) -> None:
    kube.create(
        "pods",
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"nodeName": NODE, "initContainers": list(init), "containers": containers},
        },
    )


@pytest.mark.parametrize(
    ("init", "containers"),
    [
        ([], [{"name": "c", "image": "cuda", "resources": GPU}]),
        # A sidecar (restartPolicy Always) holds its GPU for the pod's whole life.
        (
            [{"name": "srv", "image": "cuda", "restartPolicy": "Always", "resources": GPU}],
            [{"name": "c", "image": "envoy"}],
        ),
        # An ordinary init container: the pod counts until it ends (leases.inventory.pod_uses_gpu).
        ([{"name": "warmup", "image": "cuda", "resources": GPU}], [{"name": "c", "image": "busybox"}]),
    ],
    ids=["container", "sidecar", "init-container"],
)
def test_a_gpu_anywhere_in_a_running_pod_keeps_the_node_busy(
    kube: KubeSandbox, api, retry, init, containers
) -> None:
    _pod(kube, "cpu-only", containers=[{"name": "c", "image": "nginx"}])
    assert nodes.gpu_pods_on(api, NODE, retry=retry) == 0
    _pod(kube, "gpu", init=init, containers=containers)
    assert kube.get("pods", "gpu", namespace="default")["status"]["phase"] == "Running"
    assert nodes.gpu_pods_on(api, NODE, retry=retry) == 1
    assert nodes.gpu_pod_names(api, NODE, retry=retry) == ["default/gpu"]
    kube.set_pod_phase("default", "gpu", "Succeeded")
    assert nodes.gpu_pods_on(api, NODE, retry=retry) == 0
