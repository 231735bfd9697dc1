"""What the server makes of a resource request before acting on it: the target the URL
names, the decoded body with its kind, apiVersion and namespace checked, and the options
(dry run, field manager) every verb shares.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import yaml

from .errors import ApiError, bad_request, not_found
from .meta import meta
from .resources import ResourceType
from .store import Store
from .transport import Request


@dataclass(frozen=True)
class Target:
    """What a resource URL addresses."""

    rt: ResourceType
    version: str
    namespace: str  # "" for cluster-scoped resources or an all-namespaces list
    name: str
    subresource: str

    @property
    def api_version(self) -> str:
        return self.rt.api_version(self.version)


def field_manager(req: Request) -> str:
    """Return fieldManager, or the User-Agent prefix the real server falls back to."""
    explicit = req.param("fieldManager")
    if explicit:
        return explicit
    return (req.headers.get("user-agent") or "unknown").split("/")[0][:128]


def served(obj: dict[str, Any], target: Target) -> dict[str, Any]:
    """Return an object as served through the request's version."""
    rest = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind")}
    return {"apiVersion": target.api_version, "kind": target.rt.kind, **rest}


def existing(store: Store, target: Target) -> dict[str, Any]:
    obj = store.get(target.rt.key, target.namespace, target.name)
    if obj is None:
        raise not_found(target.rt.plural, target.name, target.rt.group)
    return obj


def decode_body(req: Request, *, yaml_ok: bool = False) -> dict[str, Any]:
    ctype = req.content_type
    if not yaml_ok and ctype not in ("", "application/json", "application/yaml", "text/plain", "*/*"):
        # Protobuf/CBOR are not spoken here; client-go falls back to JSON on a 415.
        raise ApiError(
            415,
            f'unsupported media type "{ctype}" - accepted media types include: '
            "application/json, application/yaml",
            reason="UnsupportedMediaType",
        )
    if not req.body.strip():
        raise bad_request("Object 'Kind' is missing in ''")
    try:
        body = yaml.safe_load(req.body) if yaml_ok or "yaml" in req.content_type else json.loads(req.body)
    except (ValueError, yaml.YAMLError) as exc:
        raise bad_request(f"couldn't get version/kind; json parse error: {exc}") from exc
    if not isinstance(body, dict):
        raise bad_request("couldn't get version/kind; json parse error: the body is not an object")
    return body


def dry_run(req: Request) -> bool:
    values = req.query.get("dryRun", [])
    for v in values:
        if v != "All":
            raise bad_request(f'dryRun: Unsupported value: "{v}": supported values: "All"')
    return bool(values)


def checked(target: Target, body: dict[str, Any]) -> dict[str, Any]:
    rt = target.rt
    kind, api_version = body.get("kind"), body.get("apiVersion")
    if kind and kind != rt.kind:
        raise bad_request(
            f'{kind} in version "{target.version}" cannot be handled as a {rt.kind}: '
            f"the object provided is unrecognized (must be of type {rt.kind})"
        )
    if api_version and api_version not in {rt.api_version(v) for v in rt.versions}:
        raise bad_request(
            f"the API version in the data ({api_version}) does not match the expected API "
            f"version ({target.api_version})"
        )
    body["apiVersion"], body["kind"] = target.api_version, rt.kind
    m = meta(body)
    if rt.namespaced:
        ns = m.get("namespace")
        if ns and target.namespace and ns != target.namespace:
            raise bad_request(
                "the namespace of the provided object does not match the namespace sent on the request"
            )
        m["namespace"] = target.namespace
    else:
        m.pop("namespace", None)
    return body


def warning_headers(warnings: list[str]) -> dict[str, str]:
    if not warnings:
        return {}
    return {"Warning": ", ".join(f"299 - {json.dumps(w)}" for w in warnings)}
