"""Admission: the plugin chain every write passes through, and the pod plugins that pin a
namespace's pods to nodes and fill their defaults.

Order follows kube-apiserver's plugin order: LimitRanger, PodNodeSelector,
DefaultTolerationSeconds, PodTolerationRestriction, MutatingAdmissionPolicy (mutating),
then ResourceQuota (validating, last). Mutating plugins see the pod before its name is
generated (so `pods "" is forbidden` for generateName pods, like the real server).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Protocol

from . import quantity
from .errors import ApiError, forbidden
from .meta import annotations
from .resources import ResourceType
from .store import Store

NODE_SELECTOR = "scheduler.alpha.kubernetes.io/node-selector"
DEFAULT_TOLERATIONS = "scheduler.alpha.kubernetes.io/defaultTolerations"
TOLERATIONS_WHITELIST = "scheduler.alpha.kubernetes.io/tolerationsWhitelist"
NS_KEY = ("", "namespaces")


@dataclass
class Attributes:
    """What admission plugins see of a request."""

    operation: str  # CREATE | UPDATE | DELETE
    rt: ResourceType
    namespace: str
    name: str
    obj: dict[str, Any] | None
    old: dict[str, Any] | None
    dry_run: bool
    subresource: str = ""

    def is_pod_create(self) -> bool:
        return self.rt.plural == "pods" and self.operation == "CREATE" and not self.subresource


class Plugin(Protocol):
    def admit(self, a: Attributes) -> None: ...
    def validate(self, a: Attributes) -> None: ...


class Chain:
    """Runs the enabled plugins in order."""

    def __init__(self, plugins: list[Plugin]) -> None:
        self.plugins = plugins

    def admit(self, a: Attributes) -> None:
        for plugin in self.plugins:
            plugin.admit(a)

    def validate(self, a: Attributes) -> None:
        for plugin in self.plugins:
            plugin.validate(a)


def _namespace(store: Store, name: str) -> dict[str, Any]:
    return store.get(NS_KEY, "", name) or {}


def _deny(a: Attributes, why: str) -> ApiError:
    return forbidden("pods", a.name, why)


def _all_containers(a: Attributes) -> list[dict[str, Any]]:
    """The pod's app and init containers (sidecars included), as LimitRanger walks them."""
    spec = (a.obj or {}).get("spec") or {}
    containers = (spec.get("containers") or []) + (spec.get("initContainers") or [])
    return [c for c in containers if isinstance(c, dict)]


class LimitRanger:
    """Container defaults and min/max from the namespace's LimitRanges, for app and init
    containers alike (mergePodResourceRequirements, PodValidateLimitFunc)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def _items(self, namespace: str) -> list[dict[str, Any]]:
        items = []
        for lr in self.store.list(("", "limitranges"), namespace):
            items += [i for i in (lr.get("spec") or {}).get("limits") or [] if i.get("type") == "Container"]
        return items

    def admit(self, a: Attributes) -> None:
        if not a.is_pod_create():
            return
        for item in self._items(a.namespace):
            for c in _all_containers(a):
                res = c.setdefault("resources", {})
                for name, value in (item.get("default") or {}).items():
                    res.setdefault("limits", {}).setdefault(name, value)
                for name, value in (item.get("defaultRequest") or {}).items():
                    res.setdefault("requests", {}).setdefault(name, value)

    def validate(self, a: Attributes) -> None:
        if not a.is_pod_create():
            return
        for item in self._items(a.namespace):
            for c in _all_containers(a):
                res = c.get("resources") or {}
                for name, bound in (item.get("max") or {}).items():
                    limit = (res.get("limits") or {}).get(name)
                    if limit is None:
                        raise _deny(
                            a, f"maximum {name} usage per Container is {bound}.  No limit is specified"
                        )
                    if quantity.parse(limit).value > quantity.parse(bound).value:
                        raise _deny(a, f"maximum {name} usage per Container is {bound}, but limit is {limit}")
                for name, bound in (item.get("min") or {}).items():
                    request = (res.get("requests") or {}).get(name)
                    if request is None:
                        raise _deny(
                            a, f"minimum {name} usage per Container is {bound}.  No request is specified"
                        )
                    if quantity.parse(request).value < quantity.parse(bound).value:
                        raise _deny(
                            a, f"minimum {name} usage per Container is {bound}, but request is {request}"
                        )


class PodNodeSelector:
    """Merge the namespace's node-selector annotation into the pod's nodeSelector."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def admit(self, a: Attributes) -> None:
        if not a.is_pod_create():
            return
        ns_annotations = annotations(_namespace(self.store, a.namespace))
        if NODE_SELECTOR not in ns_annotations:
            return
        wanted = parse_node_selector(ns_annotations[NODE_SELECTOR])
        spec = (a.obj or {}).setdefault("spec", {})
        current = spec.get("nodeSelector") or {}
        if any(k in current and current[k] != v for k, v in wanted.items()):
            raise _deny(a, "pod node label selector conflicts with its namespace node label selector")
        if wanted:
            spec["nodeSelector"] = {**current, **wanted}

    def validate(self, a: Attributes) -> None:
        return None


def parse_node_selector(text: str) -> dict[str, str]:
    """Parse `k1=v1,k2=v2` as labels.ConvertSelectorToLabelsMap does."""
    result: dict[str, str] = {}
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise ApiError(403, f"invalid node selector annotation {text!r}: expected k=v pairs")
        result[key.strip()] = value.strip()
    return result


class DefaultTolerationSeconds:
    """Tolerate not-ready/unreachable for 300 s, as every real cluster does."""

    def admit(self, a: Attributes) -> None:
        if not a.is_pod_create():
            return
        spec = (a.obj or {}).setdefault("spec", {})
        tolerations = spec.setdefault("tolerations", [])
        for key in ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"):
            if not any(
                t.get("key") == key and t.get("effect") in ("NoExecute", None, "") for t in tolerations
            ):
                tolerations.append(
                    {"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}
                )

    def validate(self, a: Attributes) -> None:
        return None


def _same_target(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return a.get("key") == b.get("key") and (a.get("effect") or "") == (b.get("effect") or "")


class PodTolerationRestriction:
    """Merge the namespace's default tolerations and enforce its whitelist."""

    MEMORY_PRESSURE = {
        "key": "node.kubernetes.io/memory-pressure",
        "operator": "Exists",
        "effect": "NoSchedule",
    }
    # Tolerations added by the system itself; the sandbox does not require them whitelisted.
    SYSTEM_KEYS = {
        "node.kubernetes.io/not-ready",
        "node.kubernetes.io/unreachable",
        "node.kubernetes.io/memory-pressure",
    }

    def __init__(self, store: Store) -> None:
        self.store = store

    def _annotation(self, a: Attributes, key: str) -> list[dict[str, Any]] | None:
        value = annotations(_namespace(self.store, a.namespace)).get(key)
        if value is None:
            return None
        try:
            parsed = json.loads(value)
        except ValueError as exc:
            raise ApiError(403, f"invalid {key} annotation on namespace {a.namespace}: {exc}") from exc
        return parsed if isinstance(parsed, list) else []

    def admit(self, a: Attributes) -> None:
        if not a.is_pod_create():
            return
        spec = (a.obj or {}).setdefault("spec", {})
        pod_tolerations = spec.get("tolerations") or []
        defaults = self._annotation(a, DEFAULT_TOLERATIONS) or []
        for default in defaults:
            for t in pod_tolerations:
                if _same_target(default, t) and (
                    default.get("operator", "Equal") != t.get("operator", "Equal")
                    or default.get("value") != t.get("value")
                ):
                    raise _deny(a, "namespace tolerations and pod tolerations conflict")
        merged = list(pod_tolerations)
        for default in defaults:
            if default not in merged:
                merged.append(default)
        if _requests_anything(spec) and self.MEMORY_PRESSURE not in merged:
            merged.append(dict(self.MEMORY_PRESSURE))
        spec["tolerations"] = merged
        self.validate(a)

    def validate(self, a: Attributes) -> None:
        if not a.is_pod_create():
            return
        whitelist = self._annotation(a, TOLERATIONS_WHITELIST)
        if not whitelist:
            return
        for t in (a.obj or {}).get("spec", {}).get("tolerations") or []:
            if t.get("key") in self.SYSTEM_KEYS:
                continue
            if not any(_tolerates_like(w, t) for w in whitelist):
                raise _deny(
                    a,
                    "pod tolerations (possibly merged with namespace default tolerations) conflict with its namespace whitelist",
                )


def _tolerates_like(allowed: dict[str, Any], t: dict[str, Any]) -> bool:
    return (
        allowed.get("key") == t.get("key")
        and (allowed.get("operator") or "Equal") == (t.get("operator") or "Equal")
        and allowed.get("value") == t.get("value")
        and (not allowed.get("effect") or allowed.get("effect") == t.get("effect"))
    )


def _requests_anything(spec: dict[str, Any]) -> bool:
    # QoS is not BestEffort when any container, app or init, sets cpu or memory requests or
    # limits (GetPodQOS).
    for c in (spec.get("containers") or []) + (spec.get("initContainers") or []):
        res = c.get("resources") or {}
        for section in ("requests", "limits"):
            if set(res.get(section) or {}) & {"cpu", "memory"}:
                return True
    return False
