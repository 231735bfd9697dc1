"""Read GPU nodes and the pods on them from a cluster, for the capacity model.

Two list calls (nodes; pods of all namespaces, paged) and no writes. Interpretation of the
labels is leases.inventory's job.

Pages are read raw (`_preload_content=False`) and decoded here, and the body is read inside
the retried call: a connection dropped in the middle of a large page is retried like one
dropped before the headers, and ends as a TemporaryError, never as urllib3's own error.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from kubernetes import client

from leases.inventory import NodeReading, read_inventory
from provisioners.kube.retry import RetryPolicy

PAGE = 500


def _page(call: Callable[..., Any], **kwargs: Any) -> dict[str, Any]:
    """Send one list request and read its whole body."""
    response = call(_preload_content=False, **kwargs)
    return json.loads(response.data)


def _list_all(call: Callable[..., Any], *, retry: RetryPolicy, what: str, **kwargs: Any) -> list[dict]:
    """Follow `continue` tokens and return every item as plain JSON."""
    items: list[dict] = []
    token = None
    while True:
        body = retry.call(_page, call, limit=PAGE, _continue=token, what=what, **kwargs)
        items.extend(body.get("items") or [])
        token = (body.get("metadata") or {}).get("continue")
        if not token:
            return items


def list_nodes_and_pods(api_client: client.ApiClient, *, retry: RetryPolicy) -> tuple[list[dict], list[dict]]:
    """Return every Node and every scheduled pod as JSON dicts."""
    core = client.CoreV1Api(api_client)
    nodes = _list_all(core.list_node, retry=retry, what="list nodes")
    pods = _list_all(
        core.list_pod_for_all_namespaces,
        retry=retry,
        what="list pods",
        field_selector="spec.nodeName!=",
    )
    return nodes, pods


def read_cluster(api_client: client.ApiClient, *, retry: RetryPolicy) -> list[NodeReading]:
    """Read the cluster's nodes into the capacity model."""
    nodes, pods = list_nodes_and_pods(api_client, retry=retry)
    return read_inventory(nodes, pods)
