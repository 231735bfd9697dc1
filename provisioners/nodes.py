"""Acting on GPU nodes: read, label, cordon, and count the GPU pods running on them.

Used to move a node between tiers through the GPU Operator (reference gpu.md §2, §4): the MIG
Manager watches `nvidia.com/mig.config` and reports in `nvidia.com/mig.config.state`; the
device plugin reads its time-slicing config key from `nvidia.com/device-plugin.config`.
Every call goes through the retry policy.
"""

from __future__ import annotations

from typing import Any

from kubernetes.client import ApiClient

from leases.inventory import MIG_CONFIG, MIG_CONFIG_STATE, TARGET_TIER_ANNOTATION, TIER_LABEL, pod_uses_gpu
from provisioners.kube.client import request
from provisioners.kube.retry import RetryPolicy

PLUGIN_CONFIG = "nvidia.com/device-plugin.config"
STRATEGIC = "application/strategic-merge-patch+json"
__all__ = [
    "MIG_CONFIG",
    "MIG_CONFIG_STATE",
    "PLUGIN_CONFIG",
    "TARGET_TIER_ANNOTATION",
    "TIER_LABEL",
    "get_node",
    "gpu_pods_on",
    "patch_node",
]


def get_node(api: ApiClient, name: str, *, retry: RetryPolicy) -> dict[str, Any]:
    """Read one Node."""
    return retry.call(request, api, "GET", f"/api/v1/nodes/{name}", what=f"get node {name}")


def patch_node(
    api: ApiClient,
    name: str,
    *,
    retry: RetryPolicy,
    labels: dict[str, str | None] | None = None,
    annotations: dict[str, str | None] | None = None,
    unschedulable: bool | None = None,
) -> dict[str, Any]:
    """Change a node's labels, annotations or cordon; a None value removes the key."""
    body: dict[str, Any] = {"metadata": {}}
    if labels:
        body["metadata"]["labels"] = labels
    if annotations:
        body["metadata"]["annotations"] = annotations
    if unschedulable is not None:
        body["spec"] = {"unschedulable": unschedulable}
    return retry.call(
        request,
        api,
        "PATCH",
        f"/api/v1/nodes/{name}",
        body=body,
        content_type=STRATEGIC,
        what=f"patch node {name}",
    )


def gpu_pods_on(api: ApiClient, name: str, *, retry: RetryPolicy) -> int:
    """Count pods holding GPUs on a node now."""
    pods = retry.call(
        request,
        api,
        "GET",
        "/api/v1/pods",
        query=[("fieldSelector", f"spec.nodeName={name}")],
        what=f"list pods on node {name}",
    )
    return sum(1 for pod in pods.get("items") or [] if pod_uses_gpu(pod))
