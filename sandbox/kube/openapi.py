"""OpenAPI documents, enough for kubectl to use server-side field validation.

kubectl reads /openapi/v3, then the group-version document it points to; when that
document has a PATCH operation for the kind (with `x-kubernetes-group-version-kind`) that
takes a `fieldValidation` query parameter, kubectl skips client-side schema validation and
sends `fieldValidation=Strict`, which the server honours. Schemas of the types are not
included (the server validates with its own copy). /openapi/v2 is served as JSON only;
kubectl asks for protobuf there and gets 406, which it treats as "not available".
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from .discovery import VERSION
from .resources import RESOURCE_TYPES, ResourceType

WRITE_PARAMS = ("dryRun", "fieldManager", "fieldValidation")


def _param(name: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "schema": {"type": "string", "uniqueItems": True}}


def _op(rt: ResourceType, version: str, action: str, op_id: str, params: tuple[str, ...]) -> dict[str, Any]:
    return {
        "operationId": op_id,
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": {"group": rt.group, "version": version, "kind": rt.kind},
        "parameters": [_param(p) for p in params],
        "responses": {"200": {"description": "OK"}},
    }


def _paths(rt: ResourceType, version: str) -> dict[str, Any]:
    prefix = f"/apis/{rt.group}/{version}" if rt.group else f"/api/{version}"
    collection = (
        f"{prefix}/namespaces/{{namespace}}/{rt.plural}" if rt.namespaced else f"{prefix}/{rt.plural}"
    )
    item = f"{collection}/{{name}}"
    base = f"{rt.kind}{version.capitalize()}"
    paths: dict[str, Any] = {}
    coll: dict[str, Any] = {}
    if "list" in rt.verbs:
        coll["get"] = _op(
            rt,
            version,
            "list",
            f"list{base}",
            ("labelSelector", "fieldSelector", "limit", "continue", "watch"),
        )
    if "create" in rt.verbs:
        coll["post"] = _op(rt, version, "post", f"create{base}", WRITE_PARAMS)
    if "deletecollection" in rt.verbs:
        coll["delete"] = _op(rt, version, "deletecollection", f"deleteCollection{base}", ("dryRun",))
    paths[collection] = coll
    if rt.verbs != ("create",):
        paths[item] = {
            "get": _op(rt, version, "get", f"read{base}", ()),
            "put": _op(rt, version, "put", f"replace{base}", WRITE_PARAMS),
            "patch": _op(rt, version, "patch", f"patch{base}", (*WRITE_PARAMS, "force")),
            "delete": _op(
                rt, version, "delete", f"delete{base}", ("dryRun", "gracePeriodSeconds", "propagationPolicy")
            ),
        }
    for sub in rt.subresources:
        paths[f"{item}/{sub}"] = {
            "get": _op(rt, version, "get", f"read{base}{sub.capitalize()}", ()),
            "put": _op(rt, version, "put", f"replace{base}{sub.capitalize()}", WRITE_PARAMS),
            "patch": _op(rt, version, "patch", f"patch{base}{sub.capitalize()}", (*WRITE_PARAMS, "force")),
        }
    if rt.namespaced and "list" in rt.verbs:
        paths[f"{prefix}/{rt.plural}"] = {"get": _op(rt, version, "list", f"list{base}ForAllNamespaces", ())}
    return paths


def _gv_key(group: str, version: str) -> str:
    return f"apis/{group}/{version}" if group else f"api/{version}"


def group_version_document(group: str, version: str) -> dict[str, Any] | None:
    """GET /openapi/v3/api/v1 or /openapi/v3/apis/GROUP/VERSION."""
    types = [rt for rt in RESOURCE_TYPES if rt.group == group and version in rt.versions]
    if not types:
        return None
    paths: dict[str, Any] = {}
    for rt in types:
        paths.update(_paths(rt, version))
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": VERSION["gitVersion"]},
        "paths": paths,
        "components": {"schemas": {}},
    }


def _digest(doc: dict[str, Any]) -> str:
    return hashlib.sha512(json.dumps(doc, sort_keys=True).encode()).hexdigest().upper()[:128]


def v3_root() -> dict[str, Any]:
    """GET /openapi/v3: where each group-version document lives."""
    paths = {}
    seen = set()
    for rt in RESOURCE_TYPES:
        for version in rt.versions:
            key = _gv_key(rt.group, version)
            if key in seen:
                continue
            seen.add(key)
            doc = group_version_document(rt.group, version) or {}
            paths[key] = {"serverRelativeURL": f"/openapi/v3/{key}?hash={_digest(doc)}"}
    return {"paths": paths}


def v2_document() -> dict[str, Any]:
    """GET /openapi/v2 (JSON): every path, no definitions."""
    paths: dict[str, Any] = {}
    for rt in RESOURCE_TYPES:
        for version in rt.versions:
            paths.update(_paths(rt, version))
    return {
        "swagger": "2.0",
        "info": {"title": "Kubernetes", "version": VERSION["gitVersion"]},
        "paths": paths,
        "definitions": {},
    }
