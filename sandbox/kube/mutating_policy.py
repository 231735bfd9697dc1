"""MutatingAdmissionPolicy (admissionregistration.k8s.io v1 and v1beta1): stored policies
and bindings mutate matching requests during admission, as the real plugin does.

Supported, strictly (anything else is refused when the policy is created, with a 422):
- `patchType: ApplyConfiguration`: the expression (CEL subset of cel.py) must build an
  `Object{...}` whose type names follow the field path and whose fields exist in the
  object's schema; the result is merged like server-side apply (maps merge, lists by key).
  As on a real server, an apply configuration may not set an atomic list, map or struct
  (a pod's nodeSelector, a container's args, a LabelSelector): the request fails with
  "invalid ApplyConfiguration: may not mutate atomic arrays, maps or structs: .spec.nodeSelector";
- `patchType: JSONPatch`: the expression must return a list of
  `JSONPatch{op, path, value, from}`, applied as RFC 6902 operations;
- `matchConstraints` (resourceRules, excludeResourceRules, namespaceSelector,
  objectSelector), `matchConditions`, `variables`, `failurePolicy` (Fail by default, or
  Ignore); bindings by `policyName` with optional `matchResources`;
- not supported: `paramKind`/`paramRef`, reinvocation.

Example the product uses (pin pods to the namespace's tier, keeping any nodeSelector the
pod has; a JSON patch because nodeSelector is an atomic map):

    mutations:
    - patchType: JSONPatch
      jsonPatch:
        expression: >
          has(object.spec.nodeSelector)
          ? [JSONPatch{op: "add", path: "/spec/nodeSelector/" + jsonpatch.escapeKey("gpulease.io/tier"),
                       value: namespaceObject.metadata.labels["gpulease.io/tier"]}]
          : [JSONPatch{op: "add", path: "/spec/nodeSelector",
                       value: {"gpulease.io/tier": namespaceObject.metadata.labels["gpulease.io/tier"]}}]

An evaluation error with failurePolicy Fail rejects the request: 403 `pods "NAME" is
forbidden: admission policy 'P' with binding 'B' failed: expression '...': no such key: ...`
(the real server's wording for this case is not reproduced exactly).
"""

from __future__ import annotations

import json
from typing import Any

from . import apply, patching, schema
from .admission import Attributes
from .cel import CelError, ObjectValue, Program, compile_expression
from .errors import ApiError, forbidden
from .resources import ADMISSION, ResourceType
from .schema import Node
from .selectors import from_label_selector, matches
from .store import Store

POLICIES = (ADMISSION, "mutatingadmissionpolicies")
# patchType → the field holding its expression.
PATCH_FIELDS = {"ApplyConfiguration": "applyConfiguration", "JSONPatch": "jsonPatch"}
JSON_PATCH_FIELDS = frozenset({"op", "path", "value", "from"})
BINDINGS = (ADMISSION, "mutatingadmissionpolicybindings")


def _cause(field: str, kind: str, message: str, value: Any = None) -> dict[str, str]:
    cause = {"field": field, "type": kind, "message": message}
    if value is not None:
        cause["value"] = json.dumps(value)
    return cause


def policy_causes(rt: ResourceType, obj: dict[str, Any]) -> list[dict[str, str]]:
    """Validation of policies and bindings at write time (422 causes)."""
    spec = obj.get("spec") or {}
    if rt.key == BINDINGS:
        causes = []
        if not spec.get("policyName"):
            causes.append(_cause("spec.policyName", "Required value", ""))
        if spec.get("paramRef"):
            causes.append(_cause("spec.paramRef", "Forbidden", "params are not supported by the sandbox"))
        return causes
    if rt.key != POLICIES:
        return []
    causes = []
    if spec.get("paramKind"):
        causes.append(_cause("spec.paramKind", "Forbidden", "params are not supported by the sandbox"))
    if not (spec.get("matchConstraints") or {}).get("resourceRules"):
        causes.append(_cause("spec.matchConstraints.resourceRules", "Required value", ""))
    names: set[str] = set()
    for i, var in enumerate(spec.get("variables") or []):
        _compiles(var.get("expression", ""), names, f"spec.variables[{i}].expression", causes)
        names.add(var.get("name", ""))
    for i, cond in enumerate(spec.get("matchConditions") or []):
        _compiles(cond.get("expression", ""), names, f"spec.matchConditions[{i}].expression", causes)
    mutations = spec.get("mutations") or []
    if not mutations:
        causes.append(_cause("spec.mutations", "Required value", ""))
    for i, mutation in enumerate(mutations):
        patch_type = mutation.get("patchType")
        field = PATCH_FIELDS.get(patch_type or "")
        if field is None:
            causes.append(
                _cause(
                    f"spec.mutations[{i}].patchType",
                    "Unsupported value",
                    'supported values: "ApplyConfiguration", "JSONPatch"',
                    patch_type,
                )
            )
            continue
        expression = (mutation.get(field) or {}).get("expression", "")
        _compiles(expression, names, f"spec.mutations[{i}].{field}.expression", causes)
    return causes


def _compiles(expression: str, variables: set[str], field: str, causes: list[dict[str, str]]) -> None:
    try:
        compile_expression(expression, variables)
    except CelError as exc:
        causes.append(_cause(field, "Invalid value", f"compilation failed: {exc}", expression))


def _rule_matches(rule: dict[str, Any], a: Attributes) -> bool:
    def has(key: str, value: str) -> bool:
        values = rule.get(key) or []
        return "*" in values or value in values

    resource = f"{a.rt.plural}/{a.subresource}" if a.subresource else a.rt.plural
    resources = rule.get("resources") or []
    scope = rule.get("scope") or "*"
    return (
        has("operations", a.operation)
        and has("apiGroups", a.rt.group)
        and any(
            v in (rule.get("apiVersions") or []) or "*" in (rule.get("apiVersions") or [])
            for v in a.rt.versions
        )
        and ("*" in resources or resource in resources or f"{a.rt.plural}/*" in resources)
        and (scope == "*" or (scope == "Namespaced") == a.rt.namespaced)
    )


class MutatingPolicies:
    """The admission plugin: applies every matching policy through each of its bindings."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def _selected(
        self, match: dict[str, Any] | None, a: Attributes, ns: dict[str, Any] | None, *, rules_required: bool
    ) -> bool:
        if match is None:
            return not rules_required
        rules = match.get("resourceRules") or []
        if (rules or rules_required) and not any(_rule_matches(r, a) for r in rules):
            return False
        if any(_rule_matches(r, a) for r in match.get("excludeResourceRules") or []):
            return False
        if match.get("namespaceSelector") and a.rt.namespaced:
            labels = ((ns or {}).get("metadata") or {}).get("labels")
            if not matches(from_label_selector(match["namespaceSelector"]), labels):
                return False
        if match.get("objectSelector"):
            target = a.obj or a.old or {}
            if not matches(
                from_label_selector(match["objectSelector"]), target.get("metadata", {}).get("labels")
            ):
                return False
        return True

    def admit(self, a: Attributes) -> None:
        if a.obj is None or a.operation not in ("CREATE", "UPDATE") or a.rt.group == ADMISSION:
            return
        policies = {p["metadata"]["name"]: p for p in self.store.list(POLICIES)}
        ns = self.store.get(("", "namespaces"), "", a.namespace) if a.rt.namespaced else None
        for binding in self.store.list(BINDINGS):
            policy = policies.get((binding.get("spec") or {}).get("policyName", ""))
            if policy is None:
                continue
            spec = policy.get("spec") or {}
            if not self._selected(spec.get("matchConstraints"), a, ns, rules_required=True):
                continue
            if not self._selected(
                (binding.get("spec") or {}).get("matchResources"), a, ns, rules_required=False
            ):
                continue
            self._apply(policy, binding, a, ns)

    def validate(self, a: Attributes) -> None:
        return None

    def _apply(
        self, policy: dict[str, Any], binding: dict[str, Any], a: Attributes, ns: dict[str, Any] | None
    ) -> None:
        spec = policy.get("spec") or {}
        current = ""
        try:
            env = {
                "object": a.obj,
                "oldObject": a.old,
                "namespaceObject": ns,
                "request": {
                    "operation": a.operation,
                    "namespace": a.namespace,
                    "name": a.name,
                    "kind": {"group": a.rt.group, "version": a.rt.versions[0], "kind": a.rt.kind},
                    "resource": {"group": a.rt.group, "version": a.rt.versions[0], "resource": a.rt.plural},
                    "subResource": a.subresource,
                    "dryRun": a.dry_run,
                    "userInfo": {
                        "username": "sandbox-admin",
                        "groups": ["system:masters", "system:authenticated"],
                    },
                },
                "variables": {},
            }
            names: set[str] = set()
            for var in spec.get("variables") or []:
                current = var.get("expression", "")
                env["variables"][var["name"]] = compile_expression(current, names).evaluate(env)
                names.add(var["name"])
            for cond in spec.get("matchConditions") or []:
                current = cond.get("expression", "")
                if compile_expression(current, names).evaluate(env) is not True:
                    return
            node = schema.root(a.rt.group, a.rt.versions[0], a.rt.kind)
            for mutation in spec.get("mutations") or []:
                patch_type = mutation.get("patchType", "")
                current = (mutation.get(PATCH_FIELDS.get(patch_type, "")) or {}).get("expression", "")
                program: Program = compile_expression(current, names)
                result = program.evaluate(env)
                if patch_type == "JSONPatch":
                    mutated = _json_patched(a.obj, result)
                else:
                    config = _to_config(result, "Object", node)
                    atomics = _atomic_paths(config, node, "")
                    if atomics:
                        raise CelError(
                            "error applying patch: invalid ApplyConfiguration: may not mutate atomic "
                            f"arrays, maps or structs: {', '.join(atomics)}"
                        )
                    mutated = apply.merge(a.obj, config, node)
                a.obj.clear()
                a.obj.update(mutated)
                env["object"] = a.obj
        except CelError as exc:
            if spec.get("failurePolicy", "Fail") == "Ignore":
                return
            raise forbidden(
                a.rt.plural,
                a.name,
                f"admission policy '{policy['metadata']['name']}' with binding "
                f"'{binding['metadata']['name']}' failed: expression '{current.strip()}': {exc}",
                a.rt.group,
            ) from None


def _to_config(value: Any, type_path: str, node: Node) -> Any:
    """Turn the CEL result into an apply configuration, checking types against the schema."""
    if isinstance(value, ObjectValue):
        if value.type_name != type_path:
            raise CelError(f"type {value.type_name} does not match the field path {type_path}")
        out = {}
        for field, child_value in value.fields.items():
            child = node.child(field) if node.known else Node(None, field=field)
            if child is None:
                raise CelError(f"field '{field}' is not in {type_path}")
            out[field] = _to_config(child_value, f"{type_path}.{field}", child)
        return out
    if type_path == "Object":
        raise CelError("an ApplyConfiguration expression must build an Object{...}")
    if isinstance(value, list):
        return [_to_config(v, type_path, node.items()) for v in value]
    if isinstance(value, dict):
        return {k: _to_config(v, type_path, node.child(str(k)) or Node(None)) for k, v in value.items()}
    return value


def _json_patched(obj: dict[str, Any], result: Any) -> dict[str, Any]:
    """Apply the JSONPatch values a JSONPatch expression returned (RFC 6902) to a copy."""
    if not isinstance(result, list):
        raise CelError("a JSONPatch expression must return a list of JSONPatch values")
    ops = []
    for value in result:
        if not isinstance(value, ObjectValue) or value.type_name != "JSONPatch":
            raise CelError("a JSONPatch expression must return a list of JSONPatch values")
        unknown = set(value.fields) - JSON_PATCH_FIELDS
        if unknown:
            raise CelError(f"field '{sorted(unknown)[0]}' is not in JSONPatch")
        ops.append(dict(value.fields))
    try:
        return patching.json_patch(obj, ops)  # patches a copy
    except ApiError as exc:
        raise CelError(f"JSON Patch: {exc}") from None


def _atomic_paths(value: Any, node: Node, path: str) -> list[str]:
    """Return the paths in an apply configuration that set an atomic list, map or struct,
    which an ApplyConfiguration mutation may not (it would drop what the object had there)."""
    if not node.known:
        return []
    if isinstance(value, dict) and not node.is_quantity:
        if node.atomic:
            return [path]
        found = []
        for key, child in value.items():
            found += _atomic_paths(child, node.child(key) or Node(None), f"{path}.{key}")
        return found
    if isinstance(value, list):
        if node.list_info()[0] == "atomic":
            return [path]
        found = []
        for i, item in enumerate(value):
            found += _atomic_paths(item, node.items(), f"{path}[{i}]")
        return found
    return []
