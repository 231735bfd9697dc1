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


def _taints_without_drain(node: dict[str, Any]) -> list[dict[str, Any]]:
    return [t for t in (node.get("spec") or {}).get("taints") or [] if t.get("key") != DRAIN_TAINT]


def _write_taints(
    api: ApiClient,
    node: dict[str, Any],
    taints: list[dict[str, Any]],
    target: str | None,
    *,
    retry: RetryPolicy,
) -> dict[str, Any]:
    meta = node["metadata"]
    body = {
        # resourceVersion makes this a compare-and-swap: a taint someone added meanwhile is
        # not lost (409, retried with a fresh read by the caller's retry of the whole step).
        "metadata": {
            "resourceVersion": meta.get("resourceVersion"),
            "annotations": {TARGET_TIER_ANNOTATION: target},
        },
        "spec": {"taints": taints or None},
    }
    return retry.call(
        request,
        api,
        "PATCH",
        f"/api/v1/nodes/{meta['name']}",
        body=body,
        content_type=MERGE,
        what=f"patch node {meta['name']}",
    )


def set_draining(api: ApiClient, name: str, *, to_tier: str, retry: RetryPolicy) -> dict[str, Any]:
    """Drain a node for another tier: annotate the target and taint it PreferNoSchedule, so the
    leases on its pool keep their room but no new lease lands on it, and it empties."""
    node = get_node(api, name, retry=retry)
    taint = {"key": DRAIN_TAINT, "value": to_tier, "effect": "PreferNoSchedule"}
    return _write_taints(api, node, [*_taints_without_drain(node), taint], to_tier, retry=retry)


def clear_draining(api: ApiClient, name: str, *, retry: RetryPolicy) -> dict[str, Any]:
    """Give a drained (or moved) node back: drop the target-tier annotation and the drain taint."""
    node = get_node(api, name, retry=retry)
    return _write_taints(api, node, _taints_without_drain(node), None, retry=retry)
