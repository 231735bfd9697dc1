"""The official OpenAPI-derived schemas of the Kubernetes types, as bundled by
`kubernetes-validate`, loaded once and navigated field by field.

Used for: unknown-field detection (fieldValidation), type and required-field checks on
write, quantity canonicalisation, and the list semantics that strategic merge patch and
server-side apply need (`x-kubernetes-patch-merge-key`, `x-kubernetes-list-type`, ...).
When kubernetes-validate is not installed the stand-in still runs: writes are not checked
against schemas and merge keys come from a small built-in table.
"""

from __future__ import annotations

import functools
import json
from importlib import resources
from typing import Any

SCHEMA_VERSION = "1.36.0"
QUANTITY = "io.k8s.apimachinery.pkg.api.resource.Quantity"
INT_OR_STRING = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"

# Used only without kubernetes-validate: (parent field, field) -> merge key ("" = set of
# scalars merged by value). Lists not named here are replaced as a whole.
FALLBACK_MERGE_KEYS = {
    "finalizers": "",
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "volumes": "name",
    "env": "name",
    "volumeMounts": "mountPath",
    "ports": "containerPort",
    "imagePullSecrets": "name",
    "ownerReferences": "uid",
    "conditions": "type",
    "addresses": "type",
}


class Node:
    """A position in the schema tree: the resolved definition plus its name (if a $ref)."""

    __slots__ = ("schema", "ref", "field")

    def __init__(self, schema: dict[str, Any] | None, ref: str = "", field: str = "") -> None:
        self.schema = schema
        self.ref = ref
        self.field = field

    @property
    def known(self) -> bool:
        return self.schema is not None

    @property
    def is_quantity(self) -> bool:
        return self.ref == QUANTITY

    @property
    def atomic(self) -> bool:
        """True for a map or struct the schema marks atomic (`x-kubernetes-map-type: atomic`,
        e.g. a pod's nodeSelector, a LabelSelector): applied and owned as one value."""
        return (self.schema or {}).get("x-kubernetes-map-type") == "atomic"

    @property
    def is_int_or_string(self) -> bool:
        return self.ref == INT_OR_STRING

    def types(self) -> set[str]:
        t = (self.schema or {}).get("type")
        if t is None:
            return set()
        return {x for x in (t if isinstance(t, list) else [t]) if x != "null"}

    @property
    def free_form(self) -> bool:
        """True where the schema accepts any content (RawExtension, JSON, unknown)."""
        s = self.schema
        if s is None:
            return True
        if s.get("x-kubernetes-preserve-unknown-fields"):
            return True
        types = self.types()
        if not types and "oneOf" not in s:
            return True
        return "object" in types and "properties" not in s and "additionalProperties" not in s

    def child(self, key: str) -> Node | None:
        """Return the schema of field `key` of this object; None if the field is unknown."""
        if self.free_form:
            return Node(None, field=key)
        s = self.schema or {}
        props = s.get("properties")
        if props is not None and key in props:
            return _resolve(props[key], key)
        extra = s.get("additionalProperties")
        if isinstance(extra, dict):
            return _resolve(extra, key)
        if extra is True:
            return Node(None, field=key)
        return None

    def items(self) -> Node:
        """Return the schema of the items of this list."""
        s = self.schema or {}
        if "items" in s:
            return _resolve(s["items"], self.field)
        return Node(None, field=self.field)

    def list_info(self) -> tuple[str, tuple[str, ...]]:
        """Return (list type, map keys): ("map", keys) | ("set", ()) | ("atomic", ())."""
        s = self.schema or {}
        if self.schema is None:
            key = FALLBACK_MERGE_KEYS.get(self.field)
            if key is None:
                return ("atomic", ())
            return ("set", ()) if key == "" else ("map", (key,))
        list_type = s.get("x-kubernetes-list-type")
        keys = tuple(s.get("x-kubernetes-list-map-keys") or ())
        merge_key = s.get("x-kubernetes-patch-merge-key")
        if list_type == "map" or (list_type is None and merge_key):
            return ("map", keys or ((merge_key,) if merge_key else ()))
        if list_type == "set":
            return ("set", ())
        return ("atomic", ())

    def patch_strategy(self) -> tuple[str, str]:
        """Return (strategy, merge key) for strategic merge patch: ("merge", key) or ("replace", "")."""
        s = self.schema
        if s is None:
            key = FALLBACK_MERGE_KEYS.get(self.field)
            return ("replace", "") if key is None else ("merge", key)
        strategy = s.get("x-kubernetes-patch-strategy", "")
        if "merge" in strategy.split(","):
            return ("merge", s.get("x-kubernetes-patch-merge-key", ""))
        return ("replace", "")


@functools.cache
def _definitions() -> dict[str, Any] | None:
    try:
        base = resources.files("kubernetes_validate") / "kubernetes-json-schema"
        text = (base / f"v{SCHEMA_VERSION}-local" / "_definitions.json").read_text()
    except (ModuleNotFoundError, FileNotFoundError):
        return None
    return json.loads(text)["$defs"]


@functools.cache
def _by_gvk() -> dict[tuple[str, str, str], str]:
    defs = _definitions() or {}
    index: dict[tuple[str, str, str], str] = {}
    for name, schema in defs.items():
        for gvk in schema.get("x-kubernetes-group-version-kind", []):
            index[(gvk["group"], gvk["version"], gvk["kind"])] = name
    return index


def _resolve(schema: dict[str, Any], field: str) -> Node:
    ref = ""
    defs = _definitions() or {}
    merged = schema
    while "$ref" in merged:
        ref = merged["$ref"].rsplit("/", 1)[-1]
        # The list/patch extensions sit beside the $ref in the referring property.
        extras = {k: v for k, v in merged.items() if k.startswith("x-kubernetes")}
        merged = {**defs.get(ref, {}), **extras}
    return Node(merged, ref, field)


def available() -> bool:
    """Return True when the official schemas are installed."""
    return _definitions() is not None


def root(group: str, version: str, kind: str) -> Node:
    """Return the schema of a kind (an unknown Node when schemas are unavailable)."""
    name = _by_gvk().get((group, version, kind))
    if name is None:
        return Node(None)
    return _resolve({"$ref": f"#/$defs/{name}"}, "")


def definition(name: str) -> dict[str, Any] | None:
    """Return a raw definition by its full name (for the OpenAPI documents)."""
    return (_definitions() or {}).get(name)


def definition_name(group: str, version: str, kind: str) -> str | None:
    """Return the definition name of a kind, e.g. io.k8s.api.core.v1.Pod."""
    return _by_gvk().get((group, version, kind))
