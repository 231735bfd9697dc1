"""Server-side apply: merge an applied configuration into the live object, take ownership
of its fields, remove fields the manager stopped applying, and report conflicts with other
managers unless `force=true`.

A simplified structured-merge-diff: associative lists merge by their map keys, sets by
value, granular maps and structs key by key; everything else (atomic lists, maps and
structs, scalars) is replaced whole; ownership is per exact path.
"""

from __future__ import annotations

import copy
from typing import Any

from .errors import ApiError
from .managed import Ownership, Path, field_set, remove_at, render_path, value_at
from .schema import Node


def merge(live: Any, config: Any, node: Node) -> Any:
    """Merge an applied configuration into a live value."""
    if isinstance(config, dict) and not node.is_quantity and not node.atomic:
        result = copy.deepcopy(live) if isinstance(live, dict) else {}
        for key, value in config.items():
            if value is None:
                result.pop(key, None)
                continue
            result[key] = merge(result.get(key), value, node.child(key) or Node(None, field=key))
        return result
    if isinstance(config, list) and isinstance(live, list):
        list_type, keys = node.list_info()
        if list_type == "map" and keys:
            result = copy.deepcopy(live)
            for entry in config:
                ident = {k: entry.get(k) for k in keys} if isinstance(entry, dict) else None
                index = next(
                    (
                        i
                        for i, o in enumerate(result)
                        if ident is not None
                        and isinstance(o, dict)
                        and all(o.get(k) == v for k, v in ident.items())
                    ),
                    None,
                )
                if index is None:
                    result.append(copy.deepcopy(entry))
                else:
                    result[index] = merge(result[index], entry, node.items())
            return result
        if list_type == "set":
            result = copy.deepcopy(live)
            result += [copy.deepcopy(v) for v in config if v not in result]
            return result
    return copy.deepcopy(config)


def _conflict(conflicts: list[tuple[Path, dict[str, Any]]]) -> ApiError:
    by_manager: dict[tuple[str, str], list[Path]] = {}
    for path, entry in conflicts:
        by_manager.setdefault((entry["manager"], entry.get("apiVersion", "")), []).append(path)
    lines = []
    causes = []
    for (manager, api_version), paths in by_manager.items():
        for path in paths:
            causes.append(
                {
                    "reason": "FieldManagerConflict",
                    "message": f'conflict with "{manager}" using {api_version}',
                    "field": render_path(path),
                }
            )
        if len(paths) == 1 and len(conflicts) == 1:
            lines.append(f'conflict with "{manager}" using {api_version}: {render_path(paths[0])}')
        else:
            lines.append(
                f'conflicts with "{manager}" using {api_version}:\n'
                + "\n".join(f"- {render_path(p)}" for p in paths)
            )
    count = len(conflicts)
    message = f"Apply failed with {count} conflict{'s' if count > 1 else ''}: " + "\n".join(lines)
    return ApiError(409, message, details={"causes": causes})


def apply(
    live: dict[str, Any] | None,
    config: dict[str, Any],
    node: Node,
    *,
    manager: str,
    force: bool,
    api_version: str,
    time: str,
) -> dict[str, Any]:
    """Return the object after applying `config` as `manager` (live None = create)."""
    config = copy.deepcopy(config)
    config.get("metadata", {}).pop("managedFields", None)
    new_fields = field_set(config, node)
    if live is None:
        result = merge({}, config, node)
        ownership = Ownership(None)
    else:
        ownership = Ownership(live.get("metadata", {}).get("managedFields"))
        me = (manager, "Apply")
        conflicts = []
        for path in sorted(new_fields):
            present, current = value_at(live, path)
            if not present:
                continue
            wanted = value_at(config, path)[1]
            if current == wanted:
                continue
            for owner in ownership.owners(path, exclude=me):
                conflicts.append((path, owner))
        if conflicts and not force:
            raise _conflict(conflicts)
        if conflicts:
            ownership.drop({p for p, _ in conflicts}, keep=me)
        result = merge(live, config, node)
        previous = ownership.owned(manager, "Apply")
        dropped = previous - new_fields
        still_owned = (
            set().union(*(s for _, s in ownership.others(manager, "Apply"))) if ownership.entries else set()
        )
        # Deepest first, so removing a list item does not hide its own fields.
        for path in sorted(dropped, key=len, reverse=True):
            if path not in still_owned and not any(p[: len(path)] == path for p in new_fields):
                remove_at(result, path)
    ownership.set(manager, "Apply", new_fields, api_version=api_version, time=time)
    result.setdefault("metadata", {})["managedFields"] = ownership.to_json()
    return result
