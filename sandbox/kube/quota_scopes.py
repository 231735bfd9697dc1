"""ResourceQuota scopes: which objects a scoped quota counts, and the validation of its
scopes with the real server's wording.

A scoped quota counts only pods, and only those matching every requirement of `spec.scopes`
(each read as `Exists`) and `spec.scopeSelector.matchExpressions`, as the real pod evaluator
does. Read here: Terminating / NotTerminating (`activeDeadlineSeconds` set or not),
BestEffort / NotBestEffort (no container requests or limits cpu or memory) and PriorityClass
(In, NotIn, Exists, DoesNotExist on `spec.priorityClassName`). CrossNamespacePodAffinity and
VolumeAttributesClass pass validation but are not read: a quota using them is ignored.
"""

from __future__ import annotations

import json
from typing import Any

from .resources import ResourceType

READ_SCOPES = ("Terminating", "NotTerminating", "BestEffort", "NotBestEffort", "PriorityClass")
STANDARD_SCOPES = (*READ_SCOPES, "CrossNamespacePodAffinity", "VolumeAttributesClass")
OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")
PODS = ("", "pods")
# Standard quota resource names, and those of them a pod scope may limit (the rest count
# other kinds of objects, which no pod scope matches); two scopes allow fewer or others.
POD_SCOPED_RESOURCES = frozenset(
    {"pods", "cpu", "memory", "requests.cpu", "requests.memory", "limits.cpu", "limits.memory"}
)
SCOPED_RESOURCES = {
    "BestEffort": frozenset({"pods"}),
    "VolumeAttributesClass": frozenset({"persistentvolumeclaims", "requests.storage"}),
}
STANDARD_RESOURCES = POD_SCOPED_RESOURCES | {
    "ephemeral-storage", "requests.ephemeral-storage", "limits.ephemeral-storage", "requests.storage",
    "services", "services.nodeports", "services.loadbalancers", "replicationcontrollers",
    "resourcequotas", "secrets", "configmaps", "persistentvolumeclaims",
}

Scope = list[dict[str, Any]]  # scope selector requirements: scopeName, operator, values
SELECTOR = "spec.scopeSelector.matchExpressions"


def scope_of(quota: dict[str, Any]) -> Scope | None:
    """Return a quota's scope requirements; None when one of them is not read here."""
    scope = _requirements(quota.get("spec") or {})
    if any(r.get("scopeName") not in READ_SCOPES for r in scope):
        return None
    return scope


def in_scope(scope: Scope, rt: ResourceType, obj: dict[str, Any]) -> bool:
    """Tell whether a quota with this scope counts an object (an unscoped one counts all)."""
    if not scope:
        return True
    return rt.key == PODS and all(_pod_matches(r, obj) for r in scope)


def scope_causes(spec: dict[str, Any]) -> list[dict[str, str]]:
    """Return field causes for a quota spec's scopes, worded like the real validation."""
    hard = spec.get("hard") or {}
    causes: list[dict[str, str]] = []
    names = set()
    for name in spec.get("scopes") or []:
        names.add(name)
        causes += _scope_name_causes(name, hard, field="spec.scopes", applied=("spec.scopes", spec.get("scopes")))
    for req in (spec.get("scopeSelector") or {}).get("matchExpressions") or []:
        name, operator, values = req.get("scopeName"), req.get("operator"), req.get("values") or []
        names.add(name)
        causes += _scope_name_causes(
            name, hard, field=f"{SELECTOR}.scopeName", applied=(SELECTOR, spec.get("scopeSelector"))
        )
        if name != "PriorityClass" and name in STANDARD_SCOPES and operator != "Exists":
            causes.append(_cause(f"{SELECTOR}.operator", operator, f"must be 'Exist' when scope is {name}"))
        if operator in ("In", "NotIn") and not values:
            causes.append({"field": f"{SELECTOR}.values", "type": "Required value", "message":
                           "must be at least one value when `operator` is 'In' or 'NotIn' for scope selector"})
        elif operator in ("Exists", "DoesNotExist") and values:
            causes.append(_cause(f"{SELECTOR}.values", values,
                                 "must be no value when `operator` is 'Exist' or 'DoesNotExist' for scope selector"))
        elif operator not in OPERATORS:
            causes.append(_cause(f"{SELECTOR}.operator", operator, "not a valid selector operator"))
    for pair in ({"BestEffort", "NotBestEffort"}, {"Terminating", "NotTerminating"}):
        if pair <= names:
            causes.append(_cause("spec.scopes", sorted(pair), "conflicting scopes"))
    return causes


def _scope_name_causes(
    name: Any, hard: dict[str, Any], *, field: str, applied: tuple[str, Any]
) -> list[dict[str, str]]:
    if name not in STANDARD_SCOPES:
        return [_cause(field, name, "unsupported scope")]
    # A scope limits only what it can match: a pod scope nothing that counts other kinds of
    # objects (services, configmaps...); extended resources are not checked, as on a real server.
    allowed = SCOPED_RESOURCES.get(name, POD_SCOPED_RESOURCES)
    if any(k in STANDARD_RESOURCES and k not in allowed for k in hard):
        return [_cause(applied[0], applied[1], "unsupported scope applied to resource")]
    return []


def _requirements(spec: dict[str, Any]) -> Scope:
    scope = [{"scopeName": name, "operator": "Exists"} for name in spec.get("scopes") or []]
    return scope + ((spec.get("scopeSelector") or {}).get("matchExpressions") or [])


def _cause(field: str, value: Any, message: str) -> dict[str, str]:
    return {
        "field": field,
        "type": "Invalid value",
        "value": json.dumps(value),
        "message": message,
    }


def _pod_matches(requirement: dict[str, Any], pod: dict[str, Any]) -> bool:
    spec = pod.get("spec") or {}
    name = requirement.get("scopeName")
    if name in ("Terminating", "NotTerminating"):
        return (spec.get("activeDeadlineSeconds") is not None) == (name == "Terminating")
    if name in ("BestEffort", "NotBestEffort"):
        return _best_effort(spec) == (name == "BestEffort")
    priority_class = spec.get("priorityClassName") or ""
    operator, values = requirement.get("operator"), requirement.get("values") or []
    if operator == "In":
        return priority_class in values
    if operator == "NotIn":
        return priority_class not in values
    if operator == "Exists":
        return bool(priority_class)
    return not priority_class  # DoesNotExist


def _best_effort(spec: dict[str, Any]) -> bool:
    # The BestEffort QoS class: no container requests or limits cpu or memory.
    for c in (spec.get("containers") or []) + (spec.get("initContainers") or []):
        res = c.get("resources") or {}
        if {"cpu", "memory"} & {*(res.get("requests") or {}), *(res.get("limits") or {})}:
            return False
    return True
