"""Per-resource create/update rules, like the API server's REST strategies: defaults,
what a write through the main resource or a subresource may change, and kind-specific
validation (pod specs, RBAC roleRef immutability, quota resource names).
"""

from __future__ import annotations

import copy
import json
from typing import Any

from . import mutating_policy, quantity, quota_scopes
from .resources import ResourceType

# Kinds whose metadata.generation tracks spec changes.
GENERATION = {"pods", "networkpolicies", "mutatingadmissionpolicies", "mutatingadmissionpolicybindings"}
STANDARD_RESOURCES = {"cpu", "memory", "ephemeral-storage", "storage"}
NS_NAME_LABEL = "kubernetes.io/metadata.name"


def is_extended(resource: str) -> bool:
    """True for extended resources such as nvidia.com/gpu (no overcommit, requests = limits)."""
    return (
        "/" in resource and not resource.startswith("kubernetes.io/") and not resource.startswith("requests.")
    )


# -- create ---------------------------------------------------------------------------------
def defaults(rt: ResourceType, obj: dict[str, Any]) -> None:
    """Apply decode-time defaults (before admission), as SetDefaults_* functions do."""
    if rt.plural == "pods":
        default_pod(obj)
    elif rt.plural == "limitranges":
        for item in (obj.get("spec") or {}).get("limits") or []:
            _default_limit_range_item(item)


def _default_limit_range_item(item: dict[str, Any]) -> None:
    # SetDefaults_LimitRangeItem: default limits fall back to max, requests to limits/min.
    if item.get("type") != "Container":
        return
    default = (
        item.setdefault("default", {}) if (item.get("max") or item.get("default")) else item.get("default")
    )
    for name, value in (item.get("max") or {}).items():
        default.setdefault(name, value)
    request = item.get("defaultRequest") or {}
    for name, value in (item.get("default") or {}).items():
        request.setdefault(name, value)
    for name, value in (item.get("min") or {}).items():
        request.setdefault(name, value)
    if request:
        item["defaultRequest"] = request


def prepare_create(rt: ResourceType, obj: dict[str, Any]) -> None:
    """Set what a new object starts with after admission (status, finalizers, generation)."""
    if rt.plural == "namespaces":
        spec = obj.setdefault("spec", {})
        finalizers = spec.get("finalizers") or []
        if "kubernetes" not in finalizers:
            finalizers.append("kubernetes")
        spec["finalizers"] = finalizers
        obj["status"] = {"phase": "Active"}
        obj["metadata"].setdefault("labels", {})[NS_NAME_LABEL] = obj["metadata"].get("name", "")
    elif rt.plural == "pods":
        obj["status"] = {"phase": "Pending", "qosClass": qos_class(obj.get("spec") or {})}
    elif rt.plural == "resourcequotas":
        obj["status"] = {}
    if rt.plural in GENERATION:
        obj["metadata"]["generation"] = 1


def default_pod(pod: dict[str, Any]) -> None:
    """Fill the defaults the API server (and the ServiceAccount plugin) give a new pod."""
    spec = pod.setdefault("spec", {})
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("securityContext", {})
    spec.setdefault("enableServiceLinks", True)
    spec.setdefault("priority", 0)
    spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
    spec.setdefault("serviceAccountName", spec.get("serviceAccount") or "default")
    spec.setdefault("serviceAccount", spec["serviceAccountName"])
    for container in (spec.get("containers") or []) + (spec.get("initContainers") or []):
        if not isinstance(container, dict):
            continue
        image = container.get("image") or ""
        tag = image.rsplit("/", 1)[-1]
        latest = ":" not in tag or tag.endswith(":latest")
        container.setdefault("imagePullPolicy", "Always" if latest and "@" not in image else "IfNotPresent")
        container.setdefault("terminationMessagePath", "/dev/termination-log")
        container.setdefault("terminationMessagePolicy", "File")
        resources = container.setdefault("resources", {})
        limits = resources.get("limits") or {}
        # Requests default to limits for every resource the container limits (SetDefaults_Pod).
        if limits:
            requests = resources.setdefault("requests", {})
            for name, value in limits.items():
                requests.setdefault(name, value)


def qos_class(spec: dict[str, Any]) -> str:
    """Return Guaranteed, Burstable or BestEffort from cpu/memory requests and limits."""
    containers = [
        c for c in (spec.get("containers") or []) + (spec.get("initContainers") or []) if isinstance(c, dict)
    ]
    any_set = False
    guaranteed = True
    for c in containers:
        res = c.get("resources") or {}
        requests, limits = res.get("requests") or {}, res.get("limits") or {}
        for name in ("cpu", "memory"):
            if name in requests or name in limits:
                any_set = True
            if name not in limits or (name in requests and _q(requests[name]) != _q(limits[name])):
                guaranteed = False
    if not any_set:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


def _q(value: Any) -> Any:
    try:
        return quantity.parse(value).value
    except quantity.QuantityError:
        return value


# -- update ---------------------------------------------------------------------------------
def prepare_update(
    rt: ResourceType, new: dict[str, Any], old: dict[str, Any], subresource: str
) -> dict[str, Any]:
    """Return the object to store, keeping what this write may not change."""
    if subresource == "status":
        result = copy.deepcopy(old)
        result["status"] = new.get("status", {})
        _copy_meta(result, new)
        return result
    if subresource == "finalize":
        result = copy.deepcopy(old)
        result.setdefault("spec", {})["finalizers"] = (new.get("spec") or {}).get("finalizers") or []
        return result
    if rt.status_subresource:
        if "status" in old:
            new["status"] = copy.deepcopy(old["status"])
        else:
            new.pop("status", None)
    if rt.plural == "namespaces":
        new.setdefault("spec", {})["finalizers"] = copy.deepcopy(
            (old.get("spec") or {}).get("finalizers", [])
        )
        new["metadata"].setdefault("labels", {})[NS_NAME_LABEL] = old["metadata"]["name"]
    return new


def _copy_meta(result: dict[str, Any], new: dict[str, Any]) -> None:
    # A status write still carries the metadata it was sent with (labels may change).
    for key in ("labels", "annotations"):
        if key in (new.get("metadata") or {}):
            result["metadata"][key] = new["metadata"][key]


def spec_changed(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """True when anything outside metadata and status differs (generation bumps)."""

    def body(o: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in o.items() if k not in ("metadata", "status", "apiVersion", "kind")}

    return body(old) != body(new)


# -- validation -----------------------------------------------------------------------------
def validate(rt: ResourceType, obj: dict[str, Any]) -> list[dict[str, str]]:
    """Return field causes for kind-specific rules on any write."""
    if rt.plural == "pods":
        return _validate_pod(obj)
    if rt.plural in ("rolebindings", "clusterrolebindings"):
        return _validate_binding(rt, obj)
    if rt.plural == "resourcequotas":
        return _validate_quota(obj)
    if rt.group == "admissionregistration.k8s.io":
        return mutating_policy.policy_causes(rt, obj)
    return []


def validate_update(rt: ResourceType, new: dict[str, Any], old: dict[str, Any]) -> list[dict[str, str]]:
    """Return field causes for changes that are not allowed."""
    if rt.plural in ("rolebindings", "clusterrolebindings") and new.get("roleRef") != old.get("roleRef"):
        ref = new.get("roleRef") or {}
        value = (
            f'rbac.RoleRef{{APIGroup:"{ref.get("apiGroup", "")}", Kind:"{ref.get("kind", "")}", '
            f'Name:"{ref.get("name", "")}"}}'
        )
        return [
            {"field": "roleRef", "type": "Invalid value", "value": value, "message": "cannot change roleRef"}
        ]
    if rt.plural == "pods":
        return _validate_pod_update(new, old)
    return []


def _validate_pod(pod: dict[str, Any]) -> list[dict[str, str]]:
    causes = []
    spec = pod.get("spec") or {}
    containers = spec.get("containers") or []
    if not containers:
        causes.append({"field": "spec.containers", "type": "Required value"})
    seen = set()
    for kind in ("containers", "initContainers"):
        for i, c in enumerate(spec.get(kind) or []):
            path = f"spec.{kind}[{i}]"
            if not c.get("image"):
                causes.append({"field": f"{path}.image", "type": "Required value"})
            if c.get("name") in seen:
                causes.append(
                    {"field": f"{path}.name", "type": "Duplicate value", "value": json.dumps(c.get("name"))}
                )
            seen.add(c.get("name"))
            causes += _resource_causes(c.get("resources") or {}, f"{path}.resources")
    return causes


def _resource_causes(resources: dict[str, Any], path: str) -> list[dict[str, str]]:
    causes = []
    requests, limits = resources.get("requests") or {}, resources.get("limits") or {}
    for name, value in requests.items():
        limit = limits.get(name)
        if is_extended(name):
            if limit is None:
                causes.append(
                    {
                        "field": f"{path}.limits",
                        "type": "Required value",
                        "message": "Limit must be set for non overcommitable resources",
                    }
                )
            elif _q(limit) != _q(value):
                causes.append(
                    {
                        "field": f"{path}.requests[{name}]",
                        "type": "Invalid value",
                        "value": json.dumps(str(value)),
                        "message": f"must be equal to {name} limit of {limit}",
                    }
                )
        elif limit is not None and _q(value) > _q(limit):
            causes.append(
                {
                    "field": f"{path}.requests",
                    "type": "Invalid value",
                    "value": json.dumps(str(value)),
                    "message": f"must be less than or equal to {name} limit of {limit}",
                }
            )
    return causes


POD_UPDATE_MSG = (
    "pod updates may not change fields other than `spec.containers[*].image`,"
    "`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only "
    "additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be "
    "set to 1 if it was previously negative)"
)


def _validate_pod_update(new: dict[str, Any], old: dict[str, Any]) -> list[dict[str, str]]:
    def mutable_stripped(spec: dict[str, Any]) -> dict[str, Any]:
        spec = copy.deepcopy(spec)
        for kind in ("containers", "initContainers"):
            for c in spec.get(kind) or []:
                c.pop("image", None)
        spec.pop("activeDeadlineSeconds", None)
        spec.pop("tolerations", None)
        return spec

    old_spec, new_spec = old.get("spec") or {}, new.get("spec") or {}
    old_tolerations = old_spec.get("tolerations") or []
    new_tolerations = new_spec.get("tolerations") or []
    removed = [t for t in old_tolerations if t not in new_tolerations]
    if mutable_stripped(old_spec) != mutable_stripped(new_spec) or removed:
        return [{"field": "spec", "type": "Forbidden", "message": POD_UPDATE_MSG}]
    return []


def _validate_binding(rt: ResourceType, obj: dict[str, Any]) -> list[dict[str, str]]:
    ref = obj.get("roleRef") or {}
    causes = []
    kinds = ("ClusterRole",) if rt.plural == "clusterrolebindings" else ("Role", "ClusterRole")
    if ref and ref.get("kind") not in kinds:
        causes.append(
            {
                "field": "roleRef.kind",
                "type": "Unsupported value",
                "value": json.dumps(ref.get("kind")),
                "message": "supported values: " + ", ".join(f'"{k}"' for k in kinds),
            }
        )
    if ref and ref.get("apiGroup") != "rbac.authorization.k8s.io":
        causes.append(
            {
                "field": "roleRef.apiGroup",
                "type": "Unsupported value",
                "value": json.dumps(ref.get("apiGroup")),
                "message": 'supported values: "rbac.authorization.k8s.io"',
            }
        )
    for i, subject in enumerate(obj.get("subjects") or []):
        if subject.get("kind") not in ("User", "Group", "ServiceAccount"):
            causes.append(
                {
                    "field": f"subjects[{i}].kind",
                    "type": "Unsupported value",
                    "value": json.dumps(subject.get("kind")),
                    "message": 'supported values: "Group", "ServiceAccount", "User"',
                }
            )
    return causes


def _validate_quota(obj: dict[str, Any]) -> list[dict[str, str]]:
    causes = []
    for name in (obj.get("spec") or {}).get("hard") or {}:
        extended = "/" in name and not name.startswith("count/")
        if extended and not name.startswith("requests."):
            causes.append(
                {
                    "field": f"spec.hard[{name}]",
                    "type": "Invalid value",
                    "value": json.dumps(name),
                    "message": "must be a standard resource for quota",
                }
            )
    return causes + quota_scopes.scope_causes(obj.get("spec") or {})
