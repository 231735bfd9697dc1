"""`meta.k8s.io/v1` Table responses, which kubectl asks for when it prints `get` output.

Columns follow what the real server prints for each kind (NAME and AGE at least).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .meta import age
from .resources import ResourceType
from .transport import Request


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


def _internal_ip(o: dict[str, Any]) -> str:
    addresses = (o.get("status") or {}).get("addresses") or []
    return next((a["address"] for a in addresses if a.get("type") == "InternalIP"), "<none>")


# Extra columns per resource after NAME: (name, type, getter, priority); AGE is placed
# before the first priority-1 column, as the real server does.
COLUMNS: dict[str, list[tuple[str, str, Callable[[dict[str, Any]], Any], int]]] = {
    "namespaces": [("Status", "string", lambda o: (o.get("status") or {}).get("phase", ""), 0)],
    "nodes": [
        ("Status", "string", _node_status, 0),
        ("Roles", "string", lambda o: "<none>", 0),
        ("Age", "string", _age, 0),
        (
            "Version",
            "string",
            lambda o: (o.get("status") or {}).get("nodeInfo", {}).get("kubeletVersion", ""),
            0,
        ),
        ("Internal-IP", "string", _internal_ip, 1),
        ("OS-Image", "string", lambda o: (o.get("status") or {}).get("nodeInfo", {}).get("osImage", ""), 1),
    ],
    "pods": [
        ("Ready", "string", _pod_ready, 0),
        ("Status", "string", lambda o: (o.get("status") or {}).get("phase", ""), 0),
        ("Restarts", "string", lambda o: "0", 0),
        ("Age", "string", _age, 0),
        ("IP", "string", lambda o: (o.get("status") or {}).get("podIP", "<none>"), 1),
        ("Node", "string", lambda o: (o.get("spec") or {}).get("nodeName", "<none>"), 1),
    ],
    "configmaps": [
        ("Data", "integer", lambda o: len(o.get("data") or {}) + len(o.get("binaryData") or {}), 0)
    ],
    "rolebindings": [
        (
            "Role",
            "string",
            lambda o: f"{(o.get('roleRef') or {}).get('kind')}/{(o.get('roleRef') or {}).get('name')}",
            0,
        )
    ],
}


def table(rt: ResourceType, items: list[dict[str, Any]], list_meta: dict[str, Any]) -> dict[str, Any]:
    """Render objects as a Table with partial-object metadata per row."""
    columns = [("Name", "string", _name, 0), *COLUMNS.get(rt.plural, [])]
    if not any(c[0] == "Age" for c in columns):
        columns.append(("Age", "string", _age, 0))
    definitions = [
        {
            "name": name,
            "type": kind,
            "format": "name" if name == "Name" else "",
            "description": name,
            "priority": priority,
        }
        for name, kind, _, priority in columns
    ]
    rows = [
        {
            "cells": [getter(o) for _, _, getter, _ in columns],
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
