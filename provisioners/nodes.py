"""Acting on GPU nodes: read, label, cordon, and count the GPU pods running on them.

Used to move a node between tiers through the GPU Operator (reference gpu.md §2, §4): the MIG
Manager watches `nvidia.com/mig.config` and reports in `nvidia.com/mig.config.state`; the
device plugin reads its time-slicing config key from `nvidia.com/device-plugin.config`.
Every call goes through the retry policy.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from kubernetes.client import ApiClient

from leases.inventory import (
    DRAINING_SINCE_ANNOTATION,
    MIG_CONFIG,
    MIG_CONFIG_STATE,
    TARGET_TIER_ANNOTATION,
    TIER_LABEL,
    draining_since,
    pod_uses_gpu,
)
from provisioners.kube.client import request
from provisioners.kube.retry import RetryPolicy

PLUGIN_CONFIG = "nvidia.com/device-plugin.config"
DRAIN_TAINT = "gpulease.io/draining"
STRATEGIC = "application/strategic-merge-patch+json"
MERGE = "application/merge-patch+json"
__all__ = [
    "MIG_CONFIG",
    "MIG_CONFIG_STATE",
    "PLUGIN_CONFIG",
    "TARGET_TIER_ANNOTATION",
    "TIER_LABEL",
    "clear_draining",
    "get_node",
    "gpu_pod_names",
    "gpu_pods_on",
    "patch_node",
    "set_draining",
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
    """Count pods holding GPUs on a node now (in any container, init containers and sidecars
    too: leases.inventory.pod_uses_gpu)."""
    return len(gpu_pod_names(api, name, retry=retry))


def gpu_pod_names(api: ApiClient, name: str, *, retry: RetryPolicy) -> list[str]:
    """Return `namespace/name` of every pod holding GPUs on a node now, sorted."""
    pods = retry.call(
        request,
        api,
        "GET",
        "/api/v1/pods",
        query=[("fieldSelector", f"spec.nodeName={name}")],
        what=f"list pods on node {name}",
    )
    return sorted(
        f"{(pod.get('metadata') or {}).get('namespace', '')}/{(pod.get('metadata') or {}).get('name', '')}"
        for pod in pods.get("items") or []
        if pod_uses_gpu(pod)
    )


def _taints_without_drain(node: dict[str, Any]) -> list[dict[str, Any]]:
    return [t for t in (node.get("spec") or {}).get("taints") or [] if t.get("key") != DRAIN_TAINT]


def _rewrite_taints(
    api: ApiClient, name: str, add: dict[str, Any] | None, target: str | None, since: str | None
) -> dict[str, Any]:
    # Read and write in one attempt: on a 409 (the GPU Operator or another controller changed
    # the node meanwhile) the retry policy runs both again, on the fresh object.
    node = request(api, "GET", f"/api/v1/nodes/{name}")
    taints = _taints_without_drain(node) + ([add] if add else [])
    annotations = node["metadata"].get("annotations") or {}
    if target is not None and annotations.get(TARGET_TIER_ANNOTATION) == target:
        # Drained again for the same tier: the drain began when it first did.
        since = annotations.get(DRAINING_SINCE_ANNOTATION) or since
    body = {
        # resourceVersion makes this a compare-and-swap, so taints set by others are kept.
        "metadata": {
            "resourceVersion": node["metadata"].get("resourceVersion"),
            "annotations": {TARGET_TIER_ANNOTATION: target, DRAINING_SINCE_ANNOTATION: since},
        },
        "spec": {"taints": taints or None},
    }
    return request(api, "PATCH", f"/api/v1/nodes/{name}", body=body, content_type=MERGE)


def set_draining(
    api: ApiClient, name: str, *, to_tier: str, since: datetime, retry: RetryPolicy
) -> dict[str, Any]:
    """Drain a node for another tier: annotate the target and when the drain began (`since`,
    kept if the node already drains for that tier), and taint it PreferNoSchedule, so the
    leases on its pool keep their room but no new lease lands on it, and it empties."""
    taint = {"key": DRAIN_TAINT, "value": to_tier, "effect": "PreferNoSchedule"}
    return retry.call(
        _rewrite_taints, api, name, taint, to_tier, draining_since(since), what=f"patch node {name}"
    )


def clear_draining(api: ApiClient, name: str, *, retry: RetryPolicy) -> dict[str, Any]:
    """Give a drained (or moved) node back: drop the drain annotations and the drain taint."""
    return retry.call(_rewrite_taints, api, name, None, None, None, what=f"patch node {name}")
