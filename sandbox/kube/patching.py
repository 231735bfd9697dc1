"""Patch types of PATCH requests: JSON patch (RFC 6902), JSON merge patch (RFC 7386) and
strategic merge patch (lists merged by the schema's patch merge key, `$patch`,
`$deleteFromPrimitiveList`, `$setElementOrder` and `$retainKeys` directives).

Server-side apply lives in apply.py.
"""

from __future__ import annotations

import copy
from typing import Any

from .errors import ApiError, bad_request
from .schema import Node

JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
APPLY_PATCH_CBOR = "application/apply-patch+cbor"
PATCH_TYPES = (JSON_PATCH, MERGE_PATCH, APPLY_PATCH, STRATEGIC_PATCH)


def unsupported_media_type(content_type: str) -> ApiError:
    """415 for an unknown patch Content-Type, with the real server's wording."""
    return ApiError(
        415,
        f"the body of the request was in an unknown format - accepted media types include: "
        f"{', '.join(PATCH_TYPES)}",
        reason="UnsupportedMediaType",
    )


# -- RFC 6902 -------------------------------------------------------------------------------
def _unprocessable(message: str) -> ApiError:
    # The API server reports a patch that cannot be applied as a bare 422.
    return ApiError(422, message, reason="Invalid")


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise _unprocessable(f"JSON pointer must start with '/': {path}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _parent(doc: Any, parts: list[str], path: str) -> Any:
    node = doc
    for part in parts[:-1]:
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            raise _unprocessable(f'doc is missing path: "{path}": missing value')
    return node


def _get(doc: Any, path: str) -> Any:
    parts = _pointer(path)
    if not parts:
        return doc
    parent = _parent(doc, parts, path)
    last = parts[-1]
    if isinstance(parent, dict) and last in parent:
        return parent[last]
    if isinstance(parent, list) and last.isdigit() and int(last) < len(parent):
        return parent[int(last)]
    raise _unprocessable(f'doc is missing path: "{path}": missing value')


def _add(doc: Any, path: str, value: Any) -> Any:
    parts = _pointer(path)
    if not parts:
        return value
    parent = _parent(doc, parts, path)
    last = parts[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        if last == "-":
            parent.append(value)
        elif last.isdigit() and int(last) <= len(parent):
            parent.insert(int(last), value)
        else:
            raise _unprocessable(f'add operation does not apply: doc is missing path: "{path}"')
    else:
        raise _unprocessable(f'add operation does not apply: doc is missing path: "{path}"')
    return doc


def _remove(doc: Any, path: str) -> Any:
    parts = _pointer(path)
    parent = _parent(doc, parts, path)
    last = parts[-1] if parts else ""
    if isinstance(parent, dict) and last in parent:
        del parent[last]
    elif isinstance(parent, list) and last.isdigit() and int(last) < len(parent):
        del parent[int(last)]
    else:
        raise _unprocessable(f'remove operation does not apply: doc is missing path: "{path}": missing value')
    return doc


def json_patch(doc: dict[str, Any], ops: Any) -> dict[str, Any]:
    """Apply an RFC 6902 patch to a copy of doc."""
    if not isinstance(ops, list):
        raise bad_request("json: cannot unmarshal object into Go value of type jsonpatch.Patch")
    doc = copy.deepcopy(doc)
    for op in ops:
        if not isinstance(op, dict) or "op" not in op:
            raise bad_request("invalid JSON patch operation: missing 'op'")
        name, path = op["op"], op.get("path", "")
        if name == "add":
            doc = _add(doc, path, copy.deepcopy(op.get("value")))
        elif name == "remove":
            doc = _remove(doc, path)
        elif name == "replace":
            _get(doc, path)
            if _pointer(path):
                doc = _remove(doc, path)
                doc = _add(doc, path, copy.deepcopy(op.get("value")))
            else:
                doc = copy.deepcopy(op.get("value"))
        elif name in ("move", "copy"):
            value = copy.deepcopy(_get(doc, op.get("from", "")))
            if name == "move":
                doc = _remove(doc, op["from"])
            doc = _add(doc, path, value)
        elif name == "test":
            if _get(doc, path) != op.get("value"):
                raise _unprocessable(f"testing value {path} failed: test failed")
        else:
            raise _unprocessable(f"Unexpected kind: {name}")
    if not isinstance(doc, dict):
        raise _unprocessable("the patched document is not an object")
    return doc


# -- RFC 7386 -------------------------------------------------------------------------------
def merge_patch(doc: Any, patch: Any) -> Any:
    """Apply an RFC 7386 merge patch (null deletes, objects merge, the rest replaces)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(doc) if isinstance(doc, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


# -- strategic merge patch ------------------------------------------------------------------
def strategic_merge(doc: dict[str, Any], patch: Any, node: Node) -> dict[str, Any]:
    """Apply a strategic merge patch, using the schema for list merge keys."""
    if not isinstance(patch, dict):
        raise bad_request("strategic merge patch must be a JSON object")
    result = _smp_map(doc, patch, node)
    return result if result is not None else {}


def _strip(value: Any) -> Any:
    """Drop directives and nulls from a value that is set as a whole."""
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if not k.startswith("$") and v is not None}
    if isinstance(value, list):
        return [_strip(v) for v in value if not (isinstance(v, dict) and "$patch" in v)]
    return copy.deepcopy(value)


def _smp_map(orig: dict[str, Any] | None, patch: dict[str, Any], node: Node) -> Any:
    directive = patch.get("$patch")
    if directive == "delete":
        return None
    if directive == "replace":
        return _strip(patch)
    result = copy.deepcopy(orig) if isinstance(orig, dict) else {}
    for key, value in patch.items():
        if key.startswith("$deleteFromPrimitiveList/"):
            field = key.split("/", 1)[1]
            result[field] = [x for x in result.get(field) or [] if x not in value]
            continue
        if key.startswith("$"):
            continue
        if value is None:
            result.pop(key, None)
            continue
        child = node.child(key) or Node(None, field=key)
        current = result.get(key)
        if isinstance(value, dict) and not child.is_quantity:
            merged = _smp_map(current if isinstance(current, dict) else None, value, child)
            if merged is None:
                result.pop(key, None)
            else:
                result[key] = merged
        elif isinstance(value, list):
            strategy, merge_key = child.patch_strategy()
            if strategy == "merge":
                result[key] = _smp_list(current or [], value, merge_key, child.items())
            else:
                result[key] = _strip(value)
        else:
            result[key] = copy.deepcopy(value)
    for key, order in patch.items():
        if key.startswith("$setElementOrder/"):
            field = key.split("/", 1)[1]
            child = node.child(field) or Node(None, field=field)
            result[field] = _reorder(result.get(field) or [], order, child.patch_strategy()[1])
    retain = patch.get("$retainKeys")
    if isinstance(retain, list):
        result = {k: v for k, v in result.items() if k in retain}
    return result


def _smp_list(orig: list[Any], patch: list[Any], merge_key: str, item: Node) -> list[Any]:
    if any(isinstance(p, dict) and p.get("$patch") == "replace" for p in patch):
        return [_strip(p) for p in patch if not (isinstance(p, dict) and "$patch" in p)]
    result = copy.deepcopy(orig)
    if not merge_key:  # a set of scalars: union, keeping the original order first
        for value in patch:
            if value not in result:
                result.append(copy.deepcopy(value))
        return result
    for entry in patch:
        if not isinstance(entry, dict):
            raise bad_request(f"merging a list: expected a map with the merge key {merge_key!r}")
        key_value = entry.get(merge_key)
        index = next(
            (i for i, o in enumerate(result) if isinstance(o, dict) and o.get(merge_key) == key_value),
            None,
        )
        if entry.get("$patch") == "delete":
            if index is not None:
                del result[index]
            continue
        if index is None:
            result.append(_strip(entry))
        else:
            merged = _smp_map(result[index], entry, item)
            if merged is None:
                del result[index]
            else:
                result[index] = merged
    return result


def _reorder(items: list[Any], order: list[Any], merge_key: str) -> list[Any]:
    def ident(x: Any) -> Any:
        return x.get(merge_key) if merge_key and isinstance(x, dict) else x

    wanted = [ident(o) for o in order]
    ranked = sorted(
        range(len(items)),
        key=lambda i: (wanted.index(ident(items[i])) if ident(items[i]) in wanted else len(wanted), i),
    )
    return [items[i] for i in ranked]
