"""REST entry for resource endpoints: authorisation, verb dispatch, and the reads (get,
list with selectors and limit/continue paging, Table output for kubectl). Writes are in
writes.py, deletes in deletes.py, watch streams in watch.py.

Authorisation follows the real server: the request's own verb first, and for a server-side
apply that would create the object, `create` as well.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from . import patching, tables
from .access import Access
from .admission import Chain
from .deletes import Deletes, NamespaceDeleter
from .errors import bad_request, method_not_allowed, not_found
from .incoming import Target, decode_body, existing, served
from .selectors import fields_match, matches, parse_fields, parse_labels
from .store import Store
from .transport import Request, Response, Result
from .watch import watch_response
from .writes import Writes

__all__ = ["Api", "Target"]


class Api:
    """Resource endpoints over the store."""

    def __init__(
        self,
        store: Store,
        *,
        chain: Chain,
        access: Access,
        namespaces: NamespaceDeleter,
        bookmark_interval: float = 1.0,
    ) -> None:
        self.store = store
        self.access = access
        self.bookmark_interval = bookmark_interval
        self.writes = Writes(store, chain)
        self.deletes = Deletes(store, chain, namespaces)

    # -- entry ---------------------------------------------------------------------------
    def handle(self, req: Request, target: Target) -> Result:
        verb = self._verb(req, target)
        rt = target.rt
        if verb not in rt.verbs and not (target.subresource and verb in ("get", "update", "patch")):
            raise method_not_allowed(req.method)
        self.access.enforce(verb, rt.plural, rt.group, target.namespace, target.name, target.subresource)
        if verb == "watch":
            return watch_response(self.store, req, target, self.bookmark_interval)
        if verb in ("get", "list"):
            return self.get(req, target) if verb == "get" else self.list(req, target)
        if rt.plural == "selfsubjectaccessreviews":
            body = decode_body(req)
            body["apiVersion"], body["kind"] = target.api_version, rt.kind
            return Response(201, self.access.review(body))
        with self.store.lock:
            if verb == "create":
                return self.writes.create(req, target)
            if verb == "update":
                return self.writes.update(req, target)
            if verb == "patch":
                if _creates_by_apply(self.store, req, target):
                    # The real server authorises an apply that would create the object for
                    # `create` as well (patch.go, before it stores the new object).
                    self.access.enforce("create", rt.plural, rt.group, target.namespace, target.name, "")
                return self.writes.patch(req, target)
            if verb == "delete":
                return self.deletes.delete(req, target)
            return self.deletes.delete_collection(req, target)

    def create_object(self, target: Target, obj: dict[str, Any], *, manager: str) -> dict[str, Any]:
        """Create through defaults and admission, bypassing HTTP (for seeding)."""
        with self.store.lock:
            return self.writes.create_object(target, obj, dry=False, manager=manager)

    def _verb(self, req: Request, target: Target) -> str:
        method = req.method
        if method in ("GET", "HEAD"):
            if req.flag("watch"):
                return "watch"
            return "get" if target.name else "list"
        if method == "POST":
            if target.name and target.rt.plural != "selfsubjectaccessreviews":
                raise method_not_allowed(method)
            return "create"
        if method == "PUT":
            return "update"
        if method == "PATCH":
            return "patch"
        if method == "DELETE":
            return "delete" if target.name else "deletecollection"
        raise method_not_allowed(method)

    # -- helpers -------------------------------------------------------------------------
    # -- reads ---------------------------------------------------------------------------
    def get(self, req: Request, target: Target) -> Response:
        obj = served(existing(self.store, target), target)
        if target.subresource == "status" or not target.subresource:
            if tables.wants_table(req):
                return Response(
                    200,
                    tables.table(target.rt, [obj], {"resourceVersion": obj["metadata"]["resourceVersion"]}),
                )
            return Response(200, obj)
        raise not_found(target.rt.plural, target.name, target.rt.group)

    def list(self, req: Request, target: Target) -> Response:
        rt = target.rt
        labels = parse_labels(req.param("labelSelector"))
        fields = parse_fields(req.param("fieldSelector"), rt.plural)
        with self.store.lock:
            rv = self.store.resource_version
            items = self.store.list(rt.key, target.namespace or None)
        items = [o for o in items if matches(labels, o["metadata"].get("labels")) and fields_match(fields, o)]
        list_meta: dict[str, Any] = {"resourceVersion": str(rv)}
        token = req.param("continue")
        if token:
            rv, start = _decode_continue(token)
            list_meta["resourceVersion"] = str(rv)
            items = [o for o in items if _sort_key(o) > start]
        limit = int(req.param("limit") or 0)
        if limit > 0 and len(items) > limit:
            rest = len(items) - limit
            items = items[:limit]
            list_meta["continue"] = _encode_continue(int(list_meta["resourceVersion"]), _sort_key(items[-1]))
            if not labels and not fields:
                list_meta["remainingItemCount"] = rest
        items = [served(o, target) for o in items]
        if tables.wants_table(req):
            return Response(200, tables.table(rt, items, list_meta))
        return Response(
            200,
            {
                "kind": f"{rt.kind}List",
                "apiVersion": target.api_version,
                "metadata": list_meta,
                "items": items,
            },
        )


def _creates_by_apply(store: Store, req: Request, target: Target) -> bool:
    """Tell whether a PATCH is a server-side apply of an object that does not exist yet."""
    if target.subresource or req.content_type not in (patching.APPLY_PATCH, patching.APPLY_PATCH_CBOR):
        return False
    return store.get(target.rt.key, target.namespace, target.name) is None


def _sort_key(obj: dict[str, Any]) -> str:
    m = obj["metadata"]
    return f"{m.get('namespace', '')}/{m['name']}"


def _encode_continue(rv: int, start: str) -> str:
    raw = json.dumps({"v": "meta.k8s.io/v1", "rv": rv, "start": start}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_continue(token: str) -> tuple[int, str]:
    try:
        padded = token + "=" * (-len(token) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded))
        return int(data["rv"]), str(data["start"])
    except (ValueError, KeyError, TypeError, binascii.Error) as exc:
        raise bad_request(f"continue key is not valid: {exc}") from exc
