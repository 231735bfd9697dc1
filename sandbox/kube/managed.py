"""Field ownership (`metadata.managedFields`), a small model of structured-merge-diff.

A field set is a set of paths; each path is a tuple of elements written as in FieldsV1:
`f:<field>`, `k:<json of the list-map keys>` for an item of an associative list, and
`v:<json value>` for a member of a set. Leaves and list items are members; plain maps are
not. Paths are recorded per (manager, operation, subresource) inside the object itself, so
nothing lives beside the stored object.
"""

from __future__ import annotations

import json
from typing import Any

from .schema import Node

Path = tuple[str, ...]

# Server-owned or identity fields that are never tracked.
_UNTRACKED = {
    ("f:apiVersion",),
    ("f:kind",),
    ("f:metadata", "f:name"),
    ("f:metadata", "f:namespace"),
    ("f:metadata", "f:uid"),
    ("f:metadata", "f:resourceVersion"),
    ("f:metadata", "f:generation"),
    ("f:metadata", "f:creationTimestamp"),
    ("f:metadata", "f:deletionTimestamp"),
    ("f:metadata", "f:deletionGracePeriodSeconds"),
    ("f:metadata", "f:managedFields"),
    ("f:metadata", "f:selfLink"),
}


def _key_element(item: dict[str, Any], keys: tuple[str, ...]) -> str:
    return "k:" + json.dumps({k: item.get(k) for k in sorted(keys)}, separators=(",", ":"))


def field_set(value: Any, node: Node, prefix: Path = ()) -> set[Path]:
    """Return the member paths of a value (an applied configuration or a whole object)."""
    out: set[Path] = set()
    if isinstance(value, dict) and not node.is_quantity and not node.atomic:
        if not value and prefix:
            out.add(prefix)
        for key, child in value.items():
            path = (*prefix, f"f:{key}")
            if path in _UNTRACKED or child is None:
                continue
            out |= field_set(child, node.child(key) or Node(None, field=key), path)
        return out
    if isinstance(value, list):
        list_type, keys = node.list_info()
        item = node.items()
        if list_type == "map" and keys and all(isinstance(i, dict) for i in value):
            for entry in value:
                path = (*prefix, _key_element(entry, keys))
                out.add(path)
                out |= {p for p in field_set(entry, item, path) if p != path}
            return out
        if list_type == "set":
            for entry in value:
                out.add((*prefix, "v:" + json.dumps(entry, separators=(",", ":"))))
            return out
    out.add(prefix)
    return out


def value_at(obj: Any, path: Path) -> tuple[bool, Any]:
    """Return (present, value) at a path."""
    current = obj
    for element in path:
        kind, _, text = element.partition(":")
        if kind == "f" and isinstance(current, dict) and text in current:
            current = current[text]
        elif kind == "k" and isinstance(current, list):
            want = json.loads(text)
            match = [
                i for i in current if isinstance(i, dict) and all(i.get(k) == v for k, v in want.items())
            ]
            if not match:
                return False, None
            current = match[0]
        elif kind == "v" and isinstance(current, list):
            value = json.loads(text)
            if value not in current:
                return False, None
            current = value
        else:
            return False, None
    return True, current


def remove_at(obj: Any, path: Path) -> None:
    """Delete the field, list item or set member at a path (if present)."""
    present, parent = value_at(obj, path[:-1])
    if not present:
        return
    kind, _, text = path[-1].partition(":")
    if kind == "f" and isinstance(parent, dict):
        parent.pop(text, None)
    elif kind == "k" and isinstance(parent, list):
        want = json.loads(text)
        parent[:] = [
            i for i in parent if not (isinstance(i, dict) and all(i.get(k) == v for k, v in want.items()))
        ]
    elif kind == "v" and isinstance(parent, list):
        value = json.loads(text)
        parent[:] = [i for i in parent if i != value]


def encode(paths: set[Path]) -> dict[str, Any]:
    """Encode a field set as FieldsV1 JSON."""
    tree: dict[str, Any] = {}
    for path in sorted(paths):
        node = tree
        for element in path:
            node = node.setdefault(element, {})
    for path in paths:
        node = tree
        for element in path:
            node = node[element]
        if node and "." not in node:
            node["."] = {}
    return tree


def decode(fields: dict[str, Any], prefix: Path = ()) -> set[Path]:
    """Decode FieldsV1 JSON into a field set."""
    out: set[Path] = set()
    for element, child in (fields or {}).items():
        if element == ".":
            out.add(prefix)
            continue
        path = (*prefix, element)
        if child:
            out |= decode(child, path)
        else:
            out.add(path)
    return out


def render_path(path: Path) -> str:
    """Render a path as conflict messages do, e.g. .spec.containers[name="c"].image."""
    parts = []
    for element in path:
        kind, _, text = element.partition(":")
        if kind == "f":
            parts.append("." + text)
        elif kind == "k":
            keys = json.loads(text)
            parts.append("[" + ",".join(f"{k}={json.dumps(v)}" for k, v in keys.items()) + "]")
        else:
            parts.append(f"[={text}]")
    return "".join(parts)


class Ownership:
    """The managedFields of one object, editable as field sets."""

    def __init__(self, entries: list[dict[str, Any]] | None) -> None:
        self.entries: list[dict[str, Any]] = []
        self.sets: list[set[Path]] = []
        for entry in entries or []:
            if not isinstance(entry, dict) or "manager" not in entry:
                continue
            self.entries.append({k: v for k, v in entry.items() if k != "fieldsV1"})
            self.sets.append(decode(entry.get("fieldsV1") or {}))

    def _index(self, manager: str, operation: str, subresource: str) -> int | None:
        for i, entry in enumerate(self.entries):
            if (
                entry["manager"] == manager
                and entry.get("operation") == operation
                and entry.get("subresource", "") == subresource
            ):
                return i
        return None

    def owned(self, manager: str, operation: str, subresource: str = "") -> set[Path]:
        index = self._index(manager, operation, subresource)
        return set(self.sets[index]) if index is not None else set()

    def set(
        self,
        manager: str,
        operation: str,
        paths: set[Path],
        *,
        api_version: str,
        time: str,
        subresource: str = "",
    ) -> None:
        index = self._index(manager, operation, subresource)
        entry = {"manager": manager, "operation": operation, "apiVersion": api_version, "time": time}
        entry["fieldsType"] = "FieldsV1"
        if subresource:
            entry["subresource"] = subresource
        if index is None:
            self.entries.append(entry)
            self.sets.append(set(paths))
        else:
            if self.sets[index] != paths:
                self.entries[index] = entry
            self.sets[index] = set(paths)

    def others(self, manager: str, operation: str) -> list[tuple[dict[str, Any], set[Path]]]:
        return [
            (e, s)
            for e, s in zip(self.entries, self.sets, strict=True)
            if not (e["manager"] == manager and e.get("operation") == operation)
        ]

    def drop(self, paths: set[Path], *, keep: tuple[str, str] | None = None) -> None:
        """Remove paths from every manager (except `keep` = (manager, operation))."""
        for entry, owned in zip(self.entries, self.sets, strict=True):
            if keep and (entry["manager"], entry.get("operation")) == keep:
                continue
            owned -= paths

    def owners(self, path: Path, *, exclude: tuple[str, str]) -> list[dict[str, Any]]:
        return [
            e
            for e, s in zip(self.entries, self.sets, strict=True)
            if path in s and (e["manager"], e.get("operation")) != exclude
        ]

    def to_json(self) -> list[dict[str, Any]]:
        out = []
        for entry, owned in zip(self.entries, self.sets, strict=True):
            if owned:
                out.append({**entry, "fieldsV1": encode(owned)})
        return out


def record_update(
    old: dict[str, Any] | None,
    new: dict[str, Any],
    node: Node,
    *,
    manager: str,
    api_version: str,
    time: str,
    subresource: str = "",
) -> None:
    """Attribute what a non-apply write changed to its manager (operation Update)."""
    ownership = Ownership((old or {}).get("metadata", {}).get("managedFields"))
    old_fields = _tracked(old, node, subresource) if old else set()
    new_fields = _tracked(new, node, subresource)
    changed = {p for p in new_fields if p not in old_fields or value_at(old, p) != value_at(new, p)}
    ownership.drop(old_fields - new_fields)
    if changed:
        ownership.drop(changed, keep=(manager, "Update"))
        mine = ownership.owned(manager, "Update", subresource) | changed
        ownership.set(manager, "Update", mine, api_version=api_version, time=time, subresource=subresource)
    new.setdefault("metadata", {})["managedFields"] = ownership.to_json()


def _tracked(obj: dict[str, Any] | None, node: Node, subresource: str) -> set[Path]:
    paths = field_set(obj or {}, node)
    if subresource == "status":
        return {p for p in paths if p[:1] == ("f:status",)}
    return paths
