"""Label and field selectors: the `labelSelector=`/`fieldSelector=` query strings and the
structured `LabelSelector` of API objects (matchLabels / matchExpressions).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .errors import ApiError, bad_request


@dataclass(frozen=True)
class Requirement:
    """One clause: key, operator (=, !=, in, notin, exists, !, gt, lt) and values."""

    key: str
    op: str
    values: tuple[str, ...] = ()

    def matches(self, labels: dict[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key)
        if self.op in ("=", "in"):
            return present and value in self.values
        if self.op in ("!=", "notin"):
            return not present or value not in self.values
        if self.op == "exists":
            return present
        if self.op == "!":
            return not present
        if self.op in ("gt", "lt"):
            try:
                number, bound = int(value or ""), int(self.values[0])
            except ValueError:
                return False
            return present and (number > bound if self.op == "gt" else number < bound)
        return False


Selector = list[Requirement]

_TOKEN = re.compile(r"\s*(?:(?P<op>==|!=|=|\(|\)|,|!|>|<)|(?P<word>[^\s=!,()<>]+))")


def _tokens(text: str) -> list[str]:
    pos, out = 0, []
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match or match.end() == pos:
            if text[pos:].strip() == "":
                break
            raise bad_request(f"unable to parse requirement: found '{text[pos]}', expected: identifier")
        out.append(match.group("op") or match.group("word"))
        pos = match.end()
    return out


def parse_labels(text: str | None) -> Selector:
    """Parse a label selector string such as `a=b,c!=d,e in (f,g),!h`."""
    if not text or not text.strip():
        return []
    tokens = _tokens(text)
    reqs: Selector = []
    i = 0

    def expect_value(idx: int) -> tuple[str, int]:
        if idx < len(tokens) and tokens[idx] not in ("==", "!=", "=", "(", ")", ",", "!"):
            return tokens[idx], idx + 1
        return "", idx  # `a=` selects the empty value

    while i < len(tokens):
        tok = tokens[i]
        if tok == "!":
            if i + 1 >= len(tokens):
                raise bad_request("unable to parse requirement: found '', expected: identifier")
            reqs.append(Requirement(tokens[i + 1], "!"))
            i += 2
        else:
            key = tok
            _check_key(key)
            nxt = tokens[i + 1] if i + 1 < len(tokens) else ","
            if nxt == ",":
                reqs.append(Requirement(key, "exists"))
                i += 1
            elif nxt in ("=", "=="):
                value, i = expect_value(i + 2)
                reqs.append(Requirement(key, "=", (value,)))
            elif nxt == "!=":
                value, i = expect_value(i + 2)
                reqs.append(Requirement(key, "!=", (value,)))
            elif nxt in (">", "<"):
                value, i = expect_value(i + 2)
                reqs.append(Requirement(key, "gt" if nxt == ">" else "lt", (value,)))
            elif nxt in ("in", "notin"):
                if i + 2 >= len(tokens) or tokens[i + 2] != "(":
                    raise bad_request(
                        f"unable to parse requirement: found '{tokens[i + 2] if i + 2 < len(tokens) else ''}', expected: '('"
                    )
                j = i + 3
                values: list[str] = []
                while j < len(tokens) and tokens[j] != ")":
                    if tokens[j] != ",":
                        values.append(tokens[j])
                    j += 1
                if j >= len(tokens):
                    raise bad_request("unable to parse requirement: found '', expected: ')'")
                reqs.append(Requirement(key, nxt, tuple(values)))
                i = j + 1
            else:
                raise bad_request(
                    f"unable to parse requirement: found '{nxt}', expected: in, notin, =, ==, !=, gt, lt"
                )
        if i < len(tokens):
            if tokens[i] != ",":
                raise bad_request(f"unable to parse requirement: found '{tokens[i]}', expected: ','")
            i += 1
    return reqs


def _check_key(key: str) -> None:
    if not re.fullmatch(r"([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?", key):
        raise bad_request(f'unable to parse requirement: invalid label key "{key}"')


def matches(selector: Selector, labels: dict[str, str] | None) -> bool:
    """Return True when every requirement holds for the labels."""
    labels = labels or {}
    return all(r.matches(labels) for r in selector)


def from_label_selector(spec: dict[str, Any] | None) -> Selector:
    """Convert a structured LabelSelector; None or {} selects everything."""
    spec = spec or {}
    reqs = [Requirement(k, "=", (v,)) for k, v in (spec.get("matchLabels") or {}).items()]
    ops = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!"}
    for expr in spec.get("matchExpressions") or []:
        op = ops.get(expr.get("operator", ""))
        if op is None:
            raise ApiError(422, f"{expr.get('operator')!r} is not a valid label selector operator")
        reqs.append(Requirement(expr["key"], op, tuple(expr.get("values") or ())))
    return reqs


# Fields each resource supports in fieldSelector, beyond metadata.name/metadata.namespace.
FIELD_GETTERS: dict[str, Callable[[dict[str, Any]], str]] = {
    "metadata.name": lambda o: o.get("metadata", {}).get("name", ""),
    "metadata.namespace": lambda o: o.get("metadata", {}).get("namespace", ""),
    "spec.nodeName": lambda o: o.get("spec", {}).get("nodeName", ""),
    "spec.restartPolicy": lambda o: o.get("spec", {}).get("restartPolicy", ""),
    "spec.schedulerName": lambda o: o.get("spec", {}).get("schedulerName", ""),
    "spec.serviceAccountName": lambda o: o.get("spec", {}).get("serviceAccountName", ""),
    "status.phase": lambda o: o.get("status", {}).get("phase", ""),
    "status.podIP": lambda o: o.get("status", {}).get("podIP", ""),
    "spec.unschedulable": lambda o: str(bool(o.get("spec", {}).get("unschedulable"))).lower(),
    "involvedObject.name": lambda o: o.get("involvedObject", {}).get("name", ""),
    "involvedObject.kind": lambda o: o.get("involvedObject", {}).get("kind", ""),
    "involvedObject.namespace": lambda o: o.get("involvedObject", {}).get("namespace", ""),
    "reason": lambda o: o.get("reason", ""),
    "type": lambda o: o.get("type", ""),
}
RESOURCE_FIELDS = {
    "pods": {
        "spec.nodeName",
        "spec.restartPolicy",
        "spec.schedulerName",
        "spec.serviceAccountName",
        "status.phase",
        "status.podIP",
    },
    "nodes": {"spec.unschedulable"},
    "namespaces": {"status.phase"},
    "events": {"involvedObject.name", "involvedObject.kind", "involvedObject.namespace", "reason", "type"},
}


@dataclass(frozen=True)
class FieldRequirement:
    field: str
    negate: bool
    value: str


def parse_fields(text: str | None, plural: str) -> list[FieldRequirement]:
    """Parse `a=b,c!=d`; unsupported fields for the resource are a 400 like the real server."""
    if not text or not text.strip():
        return []
    allowed = {"metadata.name", "metadata.namespace"} | RESOURCE_FIELDS.get(plural, set())
    reqs = []
    for part in text.split(","):
        part = part.strip()
        match = re.fullmatch(r"([^=!]+)(==|!=|=)(.*)", part)
        if not match:
            raise bad_request(f"invalid selector: '{text}'; can't understand '{part}'")
        field, op, value = match.groups()
        if field not in allowed:
            raise bad_request(f"field label not supported: {field}")
        reqs.append(FieldRequirement(field, op == "!=", value))
    return reqs


def fields_match(reqs: list[FieldRequirement], obj: dict[str, Any]) -> bool:
    """Return True when the object satisfies every field requirement."""
    for req in reqs:
        actual = FIELD_GETTERS[req.field](obj)
        if (actual == req.value) == req.negate:
            return False
    return True
