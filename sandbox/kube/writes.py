"""Writes to resources: create, update (PUT), patch (JSON, merge, strategic) and
server-side apply, with metadata bookkeeping, resourceVersion preconditions, dry run,
field validation, per-kind rules and the admission chain.

Callers hold the store lock from admission to commit, so a quota check and the object it
admits are one atomic step even under concurrent requests.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from . import apply as ssa
from . import managed, patching, schema, strategies, validation
from .admission import Attributes, Chain
from .errors import already_exists, bad_request, conflict, forbidden, invalid, not_found
from .incoming import Target, checked, decode_body, dry_run, existing, field_manager, served, warning_headers
from .meta import generate_name, meta, new_uid, now
from .resources import ResourceType
from .store import Store
from .transport import Request, Response


class Writes:
    """create / update / patch / apply."""

    def __init__(self, store: Store, chain: Chain) -> None:
        self.store = store
        self.chain = chain

    def _check_namespace(self, rt: ResourceType, namespace: str, name: str) -> None:
        # NamespaceLifecycle: no content in missing or terminating namespaces.
        if not rt.namespaced:
            return
        ns = self.store.get(("", "namespaces"), "", namespace)
        if ns is None:
            raise not_found("namespaces", namespace)
        if (ns.get("status") or {}).get("phase") == "Terminating":
            raise forbidden(
                rt.plural,
                name,
                f"unable to create new content in namespace {namespace} because it is being terminated",
                rt.group,
            )

    # -- create --------------------------------------------------------------------------
    def create(self, req: Request, target: Target) -> Response:
        rt = target.rt
        body = decode_body(req)
        body = checked(target, body)
        dry = dry_run(req)
        obj, warnings = validation.check_schema(rt, target.version, body, req.param("fieldValidation") or "")
        m = meta(obj)
        if m.get("resourceVersion"):
            raise bad_request("resourceVersion should not be set on objects to be created")
        for key in (
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "generation",
            "selfLink",
            "managedFields",
        ):
            m.pop(key, None)
        stored = self.create_object(target, obj, dry=dry, manager=field_manager(req))
        return Response(201, served(stored, target), warning_headers(warnings))

    def create_object(
        self, target: Target, obj: dict[str, Any], *, dry: bool, manager: str | None
    ) -> dict[str, Any]:
        """Default, admit, name, validate and store a new object (manager None: the
        caller already recorded managedFields)."""
        rt = target.rt
        m = meta(obj)
        self._check_namespace(rt, target.namespace, m.get("name") or "")
        strategies.defaults(rt, obj)
        attrs = Attributes("CREATE", rt, target.namespace, m.get("name") or "", obj, None, dry)
        self.chain.admit(attrs)
        m = meta(obj)  # a mutating plugin may have replaced the metadata mapping
        strategies.prepare_create(rt, obj)
        if not m.get("name") and m.get("generateName"):
            m["name"] = generate_name(m["generateName"])
        name = m.get("name") or ""
        causes = validation.metadata_causes(rt, obj)
        causes += validation.required_causes(rt, target.version, obj)
        causes += strategies.validate(rt, obj)
        validation.raise_invalid(rt, name, causes)
        if self.store.get(rt.key, target.namespace, name) is not None:
            raise already_exists(rt.plural, name, rt.group)
        attrs.name = name
        self.chain.validate(attrs)
        m["uid"] = new_uid()
        m["creationTimestamp"] = now()
        if manager is not None:
            managed.record_update(
                None,
                obj,
                schema.root(rt.group, target.version, rt.kind),
                manager=manager,
                api_version=target.api_version,
                time=m["creationTimestamp"],
            )
        if dry:
            return obj
        return self.store.create(rt.key, obj)

    # -- update --------------------------------------------------------------------------
    def update(self, req: Request, target: Target) -> Response:
        body = checked(target, decode_body(req))
        m = meta(body)
        if m.get("name") and m["name"] != target.name:
            raise bad_request(
                f"the name of the object ({m['name']}) does not match the name on the URL ({target.name})"
            )
        m["name"] = target.name
        obj, warnings = validation.check_schema(
            target.rt, target.version, body, req.param("fieldValidation") or ""
        )
        stored = self.update_object(target, obj, dry=dry_run(req), manager=field_manager(req))
        return Response(200, served(stored, target), warning_headers(warnings))

    def update_object(
        self, target: Target, new: dict[str, Any], *, dry: bool, manager: str | None
    ) -> dict[str, Any]:
        """Check preconditions and rules, then store an updated object."""
        rt = target.rt
        old = existing(self.store, target)
        wanted_rv = (new.get("metadata") or {}).get("resourceVersion")
        if wanted_rv and wanted_rv != old["metadata"]["resourceVersion"]:
            raise conflict(rt.plural, target.name, rt.group)
        m = meta(new)
        for key in (
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
        ):
            if key in old["metadata"]:
                m[key] = old["metadata"][key]
            else:
                m.pop(key, None)
        if manager is not None:
            m["managedFields"] = copy.deepcopy(old["metadata"].get("managedFields", []))
        m["resourceVersion"] = old["metadata"]["resourceVersion"]
        new = strategies.prepare_update(rt, new, old, target.subresource)
        causes = validation.metadata_causes(rt, new)
        causes += validation.required_causes(rt, target.version, new)
        causes += strategies.validate(rt, new) + strategies.validate_update(rt, new, old)
        validation.raise_invalid(rt, target.name, causes)
        attrs = Attributes("UPDATE", rt, target.namespace, target.name, new, old, dry, target.subresource)
        self.chain.admit(attrs)
        self.chain.validate(attrs)
        m = meta(new)  # a mutating plugin may have replaced the metadata mapping
        if rt.plural in strategies.GENERATION and strategies.spec_changed(old, new):
            new["metadata"]["generation"] = old["metadata"].get("generation", 1) + 1
        if manager is not None:
            managed.record_update(
                old,
                new,
                schema.root(rt.group, target.version, rt.kind),
                manager=manager,
                api_version=target.api_version,
                time=now(),
                subresource=target.subresource,
            )
        if _same(old, new):
            return old
        if m.get("deletionTimestamp") and not m.get("finalizers") and not _pending_ns(rt, new):
            if dry:
                return new
            self.store.delete(rt.key, target.namespace, target.name)
            return new
        if dry:
            return new
        return self.store.update(rt.key, new)

    # -- patch ---------------------------------------------------------------------------
    def patch(self, req: Request, target: Target) -> Response:
        ctype = req.content_type
        if ctype in (patching.APPLY_PATCH, patching.APPLY_PATCH_CBOR):
            return self.apply(req, target)
        if ctype not in patching.PATCH_TYPES:
            raise patching.unsupported_media_type(ctype)
        if req.param("force") is not None:
            raise invalid(
                "PatchOptions",
                "",
                [
                    {
                        "field": "force",
                        "type": "Forbidden",
                        "message": "may not be specified for non-apply patch",
                    }
                ],
                group="meta.k8s.io",
            )
        try:
            patch = json.loads(req.body or b"null")
        except ValueError as exc:
            raise bad_request(f"error decoding patch: {exc}") from exc
        rt = target.rt
        current = served(existing(self.store, target), target)
        if ctype == patching.JSON_PATCH:
            new = patching.json_patch(current, patch)
        elif ctype == patching.MERGE_PATCH:
            new = patching.merge_patch(current, patch)
        else:
            new = patching.strategic_merge(current, patch, schema.root(rt.group, target.version, rt.kind))
        if not isinstance(new, dict):
            raise bad_request("the patched object is not a JSON object")
        new = checked(target, new)
        if meta(new).get("name") != target.name:
            raise bad_request(
                f"the name of the object ({meta(new).get('name')}) does not match the name on the URL ({target.name})"
            )
        new, warnings = validation.check_schema(rt, target.version, new, req.param("fieldValidation") or "")
        stored = self.update_object(target, new, dry=dry_run(req), manager=field_manager(req))
        return Response(200, served(stored, target), warning_headers(warnings))

    def apply(self, req: Request, target: Target) -> Response:
        rt = target.rt
        manager = req.param("fieldManager")
        if not manager:
            raise invalid(
                "PatchOptions",
                "",
                [
                    {
                        "field": "fieldManager",
                        "type": "Required value",
                        "message": "is required for apply patch",
                    }
                ],
                group="meta.k8s.io",
            )
        config = decode_body(req, yaml_ok=True)
        if not config.get("apiVersion") or not config.get("kind"):
            raise bad_request("apiVersion and kind must be set in an apply configuration")
        config = checked(target, config)
        m = meta(config)
        if m.get("name") and m["name"] != target.name:
            raise bad_request(
                f"the name of the object ({m['name']}) does not match the name on the URL ({target.name})"
            )
        m["name"] = target.name
        config, warnings = validation.check_schema(
            rt, target.version, config, req.param("fieldValidation") or ""
        )
        force = req.flag("force")
        dry = dry_run(req)
        node = schema.root(rt.group, target.version, rt.kind)
        old = self.store.get(rt.key, target.namespace, target.name)
        stamp = now()
        if old is None:
            obj = ssa.apply(
                None, config, node, manager=manager, force=force, api_version=target.api_version, time=stamp
            )
            obj = checked(target, obj)
            meta(obj)["name"] = target.name
            stored = self.create_object(target, obj, dry=dry, manager=None)
            return Response(201, served(stored, target), warning_headers(warnings))
        wanted_rv = m.get("resourceVersion")
        if wanted_rv and wanted_rv != old["metadata"]["resourceVersion"]:
            raise conflict(rt.plural, target.name, rt.group)
        new = ssa.apply(
            served(old, target),
            config,
            node,
            manager=manager,
            force=force,
            api_version=target.api_version,
            time=stamp,
        )
        stored = self.update_object(target, new, dry=dry, manager=None)
        return Response(200, served(stored, target), warning_headers(warnings))


def _same(old: dict[str, Any], new: dict[str, Any]) -> bool:
    def strip(o: dict[str, Any]) -> dict[str, Any]:
        o = copy.deepcopy(o)
        o.get("metadata", {}).pop("resourceVersion", None)
        for entry in o.get("metadata", {}).get("managedFields") or []:
            entry.pop("time", None)
        return o

    return strip(old) == strip(new)


def _pending_ns(rt: ResourceType, obj: dict[str, Any]) -> bool:
    # A namespace waits for its spec finalizers too, not just metadata.finalizers.
    return rt.plural == "namespaces" and bool((obj.get("spec") or {}).get("finalizers"))


def _pending_ns(rt: ResourceType, obj: dict[str, Any]) -> bool:
    # A namespace waits for its spec finalizers too, not just metadata.finalizers.
    return rt.plural == "namespaces" and bool((obj.get("spec") or {}).get("finalizers"))
