"""Checks on written objects, with the real server's status codes and wording:

- decoding: a value of the wrong JSON type is a 400 ("cannot be handled as a ..."), and
  unknown fields follow `fieldValidation` (Strict: 400 "strict decoding error", Warn:
  dropped with a `Warning: 299` header, Ignore: dropped silently); quantities are checked
  and stored in canonical form;
- validation (422 Invalid): object names (DNS-1123 label/subdomain or path segment),
  label and annotation keys and values, and the schema's required fields.
"""

from __future__ import annotations

import json
import re
from typing import Any

from . import quantity, schema
from .errors import ApiError, invalid
from .resources import ResourceType
from .schema import Node

DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")

LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
    "and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', "
    "regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)
SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' "
    "or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex "
    "used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
QUALIFIED_MSG = (
    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and "
    "end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex "
    "used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
)
VALUE_MSG = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' "
    "or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or "
    "'my_value',  or '12345', regex used for validation is "
    "'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
)

# Resources whose names are path segments rather than DNS subdomains (RBAC objects).
PATH_SEGMENT_NAMES = {"roles", "rolebindings", "clusterroles", "clusterrolebindings"}
LABEL_NAMES = {"namespaces"}


def name_errors(rt: ResourceType, name: str) -> list[str]:
    """Return the problems with an object name for this resource type."""
    if rt.plural in PATH_SEGMENT_NAMES:
        if name in (".", ".."):
            return [f"may not be '{name}'"]
        return [f"may not contain '{c}'" for c in "/%" if c in name]
    errors = []
    if rt.plural in LABEL_NAMES:
        if len(name) > 63:
            errors.append("must be no more than 63 characters")
        if not DNS1123_LABEL.match(name):
            errors.append(LABEL_MSG)
    else:
        if len(name) > 253:
            errors.append("must be no more than 253 characters")
        if not DNS1123_SUBDOMAIN.match(name):
            errors.append(SUBDOMAIN_MSG)
    return errors


def qualified_name_errors(key: str) -> list[str]:
    """Problems with a label/annotation key (`[prefix/]name`)."""
    prefix, _, name = key.rpartition("/")
    errors = []
    if prefix and (len(prefix) > 253 or not DNS1123_SUBDOMAIN.match(prefix)):
        errors.append("prefix part " + SUBDOMAIN_MSG)
    if not name:
        errors.append("name part must be non-empty")
    elif len(name) > 63:
        errors.append("name part must be no more than 63 characters")
    elif not QUALIFIED_NAME.match(name):
        errors.append(QUALIFIED_MSG)
    return errors


def metadata_causes(rt: ResourceType, obj: dict[str, Any]) -> list[dict[str, str]]:
    """Return field causes for invalid name, labels and annotations."""
    meta = obj.get("metadata") or {}
    causes = []
    name = meta.get("name") or ""
    if not name:
        causes.append(
            {
                "field": "metadata.name",
                "type": "Required value",
                "message": "name or generateName is required",
            }
        )
    for problem in name_errors(rt, name) if name else []:
        causes.append(
            {"field": "metadata.name", "type": "Invalid value", "value": json.dumps(name), "message": problem}
        )
    for key, value in (meta.get("labels") or {}).items():
        for problem in qualified_name_errors(key):
            causes.append(
                {
                    "field": "metadata.labels",
                    "type": "Invalid value",
                    "value": json.dumps(key),
                    "message": problem,
                }
            )
        if not isinstance(value, str) or len(value) > 63 or not LABEL_VALUE.match(value):
            problem = (
                "must be no more than 63 characters"
                if isinstance(value, str) and len(value) > 63
                else VALUE_MSG
            )
            causes.append(
                {
                    "field": "metadata.labels",
                    "type": "Invalid value",
                    "value": json.dumps(value),
                    "message": problem,
                }
            )
    for key in meta.get("annotations") or {}:
        for problem in qualified_name_errors(key):
            causes.append(
                {
                    "field": "metadata.annotations",
                    "type": "Invalid value",
                    "value": json.dumps(key),
                    "message": problem,
                }
            )
    return causes


_JSON_TYPES = {dict: "object", list: "array", str: "string", bool: "bool", int: "number", float: "number"}
_GO_TYPES = {
    "string": "string",
    "integer": "int",
    "number": "float64",
    "boolean": "bool",
    "array": "[]",
    "object": "map",
}


def _json_type(value: Any) -> str:
    return _JSON_TYPES.get(type(value), "value")


class Findings:
    """What a schema walk found: unknown fields, type errors, missing required fields."""

    def __init__(self) -> None:
        self.unknown: list[str] = []
        self.type_errors: list[str] = []
        self.required: list[str] = []
        self.quantity_errors: list[str] = []


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def walk(value: Any, node: Node, path: str, found: Findings, prune: bool) -> Any:
    """Check a value against its schema; returns the value with unknown fields pruned
    (when asked) and quantities canonicalised."""
    if value is None or not node.known:
        return value
    if node.is_quantity:
        try:
            return quantity.canonicalize(value)
        except quantity.QuantityError:
            found.quantity_errors.append(path)
            return value
    if node.is_int_or_string:
        if not isinstance(value, str | int) or isinstance(value, bool):
            found.type_errors.append(
                f"json: cannot unmarshal {_json_type(value)} into Go struct field {path} of type intstr.IntOrString"
            )
        return value
    types = node.types()
    if not types:
        return value
    if isinstance(value, dict):
        if "object" not in types:
            found.type_errors.append(_type_error(value, path, types))
            return value
        if node.free_form:
            return value
        result = {}
        for key, child_value in value.items():
            child = node.child(key)
            if child is None:
                found.unknown.append(_join(path, key))
                if prune:
                    continue
                result[key] = child_value
                continue
            result[key] = walk(child_value, child, _join(path, key), found, prune)
        for key in (node.schema or {}).get("required", []):
            if key not in value:
                found.required.append(_join(path, key))
        return result
    if isinstance(value, list):
        if "array" not in types:
            found.type_errors.append(_type_error(value, path, types))
            return value
        item = node.items()
        return [walk(v, item, f"{path}[{i}]", found, prune) for i, v in enumerate(value)]
    ok = (
        (isinstance(value, bool) and "boolean" in types)
        or (isinstance(value, str) and "string" in types)
        or (isinstance(value, int) and not isinstance(value, bool) and types & {"integer", "number"})
        or (isinstance(value, float) and ("number" in types or ("integer" in types and value.is_integer())))
    )
    if not ok:
        found.type_errors.append(_type_error(value, path, types))
    return value


def _type_error(value: Any, path: str, types: set[str]) -> str:
    want = _GO_TYPES.get(next(iter(types)), next(iter(types)))
    return f"json: cannot unmarshal {_json_type(value)} into Go struct field {path} of type {want}"


def check_schema(
    rt: ResourceType, version: str, obj: dict[str, Any], field_validation: str
) -> tuple[dict[str, Any], list[str]]:
    """Decode-time checks; returns (object to store, warnings) or raises 400/422."""
    node = schema.root(rt.group, version, rt.kind)
    if not node.known:
        return obj, []
    found = Findings()
    mode = (field_validation or "Warn").capitalize()
    checked = walk(obj, node, "", found, prune=mode != "Strict")
    handled = f'{rt.kind} in version "{version}" cannot be handled as a {rt.kind}'
    if found.type_errors:
        raise ApiError(400, f"{handled}: {found.type_errors[0]}")
    if found.quantity_errors:
        raise ApiError(400, f"{handled}: {quantity.ERROR}")
    warnings = []
    if found.unknown:
        listed = ", ".join(f'unknown field "{u}"' for u in found.unknown)
        if mode == "Strict":
            raise ApiError(400, f"{handled}: strict decoding error: {listed}")
        if mode == "Warn":
            warnings = [f'unknown field "{u}"' for u in found.unknown]
    return checked, warnings


def required_causes(rt: ResourceType, version: str, obj: dict[str, Any]) -> list[dict[str, str]]:
    """Return 'Required value' causes for required fields the object lacks."""
    node = schema.root(rt.group, version, rt.kind)
    if not node.known:
        return []
    found = Findings()
    walk(obj, node, "", found, prune=False)
    return [{"field": f, "type": "Required value"} for f in found.required]


def raise_invalid(rt: ResourceType, name: str, causes: list[dict[str, str]]) -> None:
    """Raise 422 Invalid when there are causes."""
    if causes:
        raise invalid(rt.kind, name, causes, group=rt.group)
