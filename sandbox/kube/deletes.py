"""Deletes: DELETE of one object (preconditions, finalizers, namespaces handed to the
namespace controller) and deletecollection.
"""

from __future__ import annotations

import json
from typing import Any, Protocol

from .admission import Attributes, Chain
from .errors import bad_request, conflict
from .incoming import Target, dry_run, existing, served
from .meta import now
from .selectors import fields_match, matches, parse_fields, parse_labels
from .store import Store
from .transport import Request, Response

# Objects whose DELETE returns the object rather than a success Status.
RETURNS_DELETED_OBJECT = {"pods", "namespaces", "nodes"}


class NamespaceDeleter(Protocol):
    def begin_delete(self, ns: dict[str, Any], *, dry_run: bool) -> dict[str, Any]: ...


class Deletes:
    """delete / deletecollection."""

    def __init__(self, store: Store, chain: Chain, namespaces: NamespaceDeleter) -> None:
        self.store = store
        self.chain = chain
        self.namespaces = namespaces

    # -- delete --------------------------------------------------------------------------
    def _delete_options(self, req: Request) -> dict[str, Any]:
        options: dict[str, Any] = {}
        if req.body.strip():
            try:
                options = json.loads(req.body)
            except ValueError as exc:
                raise bad_request(f"error decoding DeleteOptions: {exc}") from exc
        return options if isinstance(options, dict) else {}

    def delete(self, req: Request, target: Target) -> Response:
        rt = target.rt
        old = existing(self.store, target)
        options = self._delete_options(req)
        dry = dry_run(req) or "All" in (options.get("dryRun") or [])
        pre = options.get("preconditions") or {}
        if pre.get("uid") and pre["uid"] != old["metadata"]["uid"]:
            raise conflict(
                rt.plural,
                target.name,
                rt.group,
                f"Precondition failed: UID in precondition: {pre['uid']}, UID in object meta: {old['metadata']['uid']}",
            )
        if pre.get("resourceVersion") and pre["resourceVersion"] != old["metadata"]["resourceVersion"]:
            raise conflict(
                rt.plural,
                target.name,
                rt.group,
                f"Precondition failed: ResourceVersion in precondition: {pre['resourceVersion']}, "
                f"ResourceVersion in object meta: {old['metadata']['resourceVersion']}",
            )
        result = self.delete_object(target, old, dry=dry)
        return Response(200, self._deleted_body(target, result))

    def delete_object(self, target: Target, old: dict[str, Any], *, dry: bool) -> dict[str, Any]:
        """Delete now, or mark for deletion while finalizers remain."""
        rt = target.rt
        attrs = Attributes("DELETE", rt, target.namespace, target.name, None, old, dry)
        self.chain.validate(attrs)
        if rt.plural == "namespaces":
            return self.namespaces.begin_delete(old, dry_run=dry)
        if old["metadata"].get("finalizers"):
            if old["metadata"].get("deletionTimestamp"):
                return old
            old["metadata"]["deletionTimestamp"] = now()
            old["metadata"]["deletionGracePeriodSeconds"] = 0
            return old if dry else self.store.update(rt.key, old)
        if dry:
            return old
        return self.store.delete(rt.key, target.namespace, target.name) or old

    def _deleted_body(self, target: Target, obj: dict[str, Any]) -> dict[str, Any]:
        pending = bool(obj["metadata"].get("deletionTimestamp"))
        if target.rt.plural in RETURNS_DELETED_OBJECT or pending:
            return served(obj, target)
        details: dict[str, Any] = {
            "name": target.name,
            "kind": target.rt.plural,
            "uid": obj["metadata"].get("uid"),
        }
        if target.rt.group:
            details["group"] = target.rt.group
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details}

    def delete_collection(self, req: Request, target: Target) -> Response:
        rt = target.rt
        labels = parse_labels(req.param("labelSelector"))
        fields = parse_fields(req.param("fieldSelector"), rt.plural)
        dry = dry_run(req)
        deleted = []
        for obj in self.store.list(rt.key, target.namespace or None):
            if not (matches(labels, obj["metadata"].get("labels")) and fields_match(fields, obj)):
                continue
            one = Target(
                rt, target.version, obj["metadata"].get("namespace", ""), obj["metadata"]["name"], ""
            )
            deleted.append(served(self.delete_object(one, obj, dry=dry), target))
        return Response(
            200,
            {
                "kind": f"{rt.kind}List",
                "apiVersion": target.api_version,
                "metadata": {"resourceVersion": str(self.store.resource_version)},
                "items": deleted,
            },
        )
