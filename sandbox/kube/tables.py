"""`meta.k8s.io/v1` Table responses, which kubectl asks for when it prints `get` output.

Columns follow what the real server prints for each kind (NAME and AGE at least).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .meta import age
from .resources import ResourceType
from .transport import Request

Column = tuple[str, str, Callable[[dict[str, Any]], Any]]


def wants_table(req: Request) -> bool:
    """True when the Accept header asks for a Table (kubectl get)."""
    return "as=Table" in req.headers.get("accept", "")


def _name(o: dict[str, Any]) -> str:
    return o["metadata"]["name"]


def _age(o: dict[str, Any]) -> str:
    return age(o["metadata"].get("creationTimestamp"))


def _node_status(o: dict[str, Any]) -> str:
    ready = next((c for c in (o.get("status") or {}).get("conditions") or [] if c.get("type") == "Ready"), {})
    text = "Ready" if ready.get("status") == "True" else "NotReady"
    if (o.get("spec") or {}).get("unschedulable"):
        text += ",SchedulingDisabled"
    return text


def _pod_ready(o: dict[str, Any]) -> str:
    statuses = (o.get("status") or {}).get("containerStatuses") or []
    total = len((o.get("spec") or {}).get("containers") or [])
    return f"{sum(1 for s in statuses if s.get('ready'))}/{total}"


COLUMNS: dict[str, list[Column]] = {
    "namespaces": [("Status", "string", lambda o: (o.get("status") or {}).get("phase", ""))],
    "nodes": [
        ("Status", "string", _node_status),
        ("Roles", "string", lambda o: "<none>"),
    ],
    "pods": [
        ("Ready", "string", _pod_ready),
        ("Status", "string", lambda o: (o.get("status") or {}).get("phase", "")),
        ("Restarts", "string", lambda o: "0"),
    ],
    "configmaps": [("Data", "integer", lambda o: len(o.get("data") or {}) + len(o.get("binaryData") or {}))],
    "rolebindings": [
        (
            "Role",
            "string",
            lambda o: f"{(o.get('roleRef') or {}).get('kind')}/{(o.get('roleRef') or {}).get('name')}",
        )
    ],
}
TRAILING: dict[str, list[Column]] = {
    "nodes": [
        ("Version", "string", lambda o: (o.get("status") or {}).get("nodeInfo", {}).get("kubeletVersion", ""))
    ],
    "pods": [
        ("IP", "string", lambda o: (o.get("status") or {}).get("podIP", "<none>")),
        ("Node", "string", lambda o: (o.get("spec") or {}).get("nodeName", "<none>")),
    ],
}


def table(rt: ResourceType, items: list[dict[str, Any]], list_meta: dict[str, Any]) -> dict[str, Any]:
    """Render objects as a Table with partial-object metadata per row."""
    columns: list[Column] = [("Name", "string", _name)]
    columns += COLUMNS.get(rt.plural, [])
    columns += [("Age", "string", _age)]
    columns += TRAILING.get(rt.plural, [])
    priority_from = len(columns) - len(TRAILING.get(rt.plural, []))
    definitions = [
        {
            "name": name,
            "type": kind,
            "format": "name" if name == "Name" else "",
            "description": name,
            "priority": 1 if i >= priority_from else 0,
        }
        for i, (name, kind, _) in enumerate(columns)
    ]
    rows = [
        {
            "cells": [getter(o) for _, _, getter in columns],
            "object": {
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": o["metadata"],
            },
        }
        for o in items
    ]
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_meta,
        "columnDefinitions": definitions,
        "rows": rows,
    }
