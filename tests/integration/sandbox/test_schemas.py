"""What the stand-in stores and serves is valid against the official schemas, checked
independently with kubernetes-validate (strict: no field the real API would not have)."""

from __future__ import annotations

import kubernetes_validate
import pytest

from sandbox.kube.resources import RESOURCE_TYPES


def test_every_stored_object_is_schema_valid(kube, core):
    core.create_namespace(
        {
            "metadata": {
                "name": "team",
                "labels": {"gpulease.io/tier": "h100-1g"},
                "annotations": {"scheduler.alpha.kubernetes.io/node-selector": "gpulease.io/tier=h100-1g"},
            }
        }
    )
    core.create_namespaced_resource_quota(
        "team", {"metadata": {"name": "q"}, "spec": {"hard": {"requests.nvidia.com/gpu": "4"}}}
    )
    core.create_namespaced_limit_range(
        "team",
        {"metadata": {"name": "l"}, "spec": {"limits": [{"type": "Container", "default": {"cpu": "1"}}]}},
    )
    gpu = {"name": "c", "image": "cuda", "resources": {"limits": {"nvidia.com/gpu": "1"}}}
    core.create_namespaced_pod("team", {"metadata": {"name": "bound"}, "spec": {"containers": [gpu]}})
    core.create_namespaced_pod(
        "team",
        {"metadata": {"name": "pending"}, "spec": {"nodeSelector": {"nope": "x"}, "containers": [gpu]}},
    )
    core.patch_node(
        "gpu-h100-1g-0",
        {"metadata": {"labels": {"nvidia.com/mig.config": "all-3g.40gb"}}, "spec": {"unschedulable": True}},
    )
    checked = 0
    for rt in RESOURCE_TYPES:
        for obj in kube.list(rt.plural, group=rt.group):
            obj = {"apiVersion": rt.api_version(), "kind": rt.kind, **obj}
            try:
                kubernetes_validate.validate(obj, "1.36", strict=True)
            except kubernetes_validate.ValidationError as exc:
                pytest.fail(f"{rt.kind} {obj['metadata']['name']}: {exc.message} at {list(exc.path)}")
            checked += 1
    assert checked >= 25
