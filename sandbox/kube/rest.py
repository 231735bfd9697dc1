"""REST semantics of resource endpoints: get, list, create, update (PUT), patch, apply,
delete and deletecollection, with metadata bookkeeping, preconditions, dry-run, field
validation and the admission chain. Watch streams are in watch.py; namespace deletion
is handed to the namespace controller.

Writes hold the store lock from admission to commit, so a quota check and the pod it
admits are one atomic step even under concurrent requests.
"""

from __future__ import annotations

import base64
import binascii
import copy
import json
from dataclasses import dataclass
from typing import Any, Protocol

import yaml

from . import apply as ssa
from . import managed, patching, schema, strategies, tables, validation
from .access import Access
from .admission import Attributes, Chain
from .errors import (
    ApiError,
    already_exists,
    bad_request,
    conflict,
    forbidden,
    invalid,
    method_not_allowed,
    not_found,
)
from .meta import generate_name, meta, new_uid, now
from .resources import ResourceType
from .selectors import fields_match, matches, parse_fields, parse_labels
from .store import Store
from .transport import Request, Response, Result
from .watch import watch_response

# Objects whose DELETE returns the object rather than a success Status.
RETURNS_DELETED_OBJECT = {"pods", "namespaces", "nodes"}


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


class NamespaceDeleter(Protocol):
    def begin_delete(self, ns: dict[str, Any], *, dry_run: bool) -> dict[str, Any]: ...


def field_manager(req: Request) -> str:
    """Return fieldManager, or the User-Agent prefix the real server falls back to."""
    explicit = req.param("fieldManager")
    if explicit:
        return explicit
    return (req.headers.get("user-agent") or "unknown").split("/")[0][:128]


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
        self.chain = chain
        self.access = access
        self.namespaces = namespaces
        self.bookmark_interval = bookmark_interval

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
        with self.store.lock:
            if verb == "create":
                return self.create(req, target)
            if verb == "update":
                return self.update(req, target)
            if verb == "patch":
                return self.patch(req, target)
            if verb == "delete":
                return self.delete(req, target)
            return self.delete_collection(req, target)

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
    def out(self, obj: dict[str, Any], target: Target) -> dict[str, Any]:
        """Return an object as served through the request's version."""
        rest = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind")}
        return {"apiVersion": target.api_version, "kind": target.rt.kind, **rest}

    def _existing(self, target: Target) -> dict[str, Any]:
        obj = self.store.get(target.rt.key, target.namespace, target.name)
        if obj is None:
            raise not_found(target.rt.plural, target.name, target.rt.group)
        return obj

    @staticmethod
    def _decode(req: Request, *, yaml_ok: bool = False) -> dict[str, Any]:
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

    @staticmethod
    def _dry_run(req: Request) -> bool:
        values = req.query.get("dryRun", [])
        for v in values:
            if v != "All":
                raise bad_request(f'dryRun: Unsupported value: "{v}": supported values: "All"')
        return bool(values)

    def _incoming(self, target: Target, body: dict[str, Any]) -> dict[str, Any]:
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

    @staticmethod
    def _warning_headers(warnings: list[str]) -> dict[str, str]:
        if not warnings:
            return {}
        return {"Warning": ", ".join(f"299 - {json.dumps(w)}" for w in warnings)}

    # -- reads ---------------------------------------------------------------------------
    def get(self, req: Request, target: Target) -> Response:
        obj = self.out(self._existing(target), target)
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
        items = [self.out(o, target) for o in items]
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

    # -- create --------------------------------------------------------------------------
    def create(self, req: Request, target: Target) -> Response:
        rt = target.rt
        body = self._decode(req)
        if rt.plural == "selfsubjectaccessreviews":
            body["apiVersion"], body["kind"] = target.api_version, rt.kind
            return Response(201, self.access.review(body))
        body = self._incoming(target, body)
        dry = self._dry_run(req)
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
        return Response(201, self.out(stored, target), self._warning_headers(warnings))

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
        body = self._incoming(target, self._decode(req))
        m = meta(body)
        if m.get("name") and m["name"] != target.name:
            raise bad_request(
                f"the name of the object ({m['name']}) does not match the name on the URL ({target.name})"
            )
        m["name"] = target.name
        obj, warnings = validation.check_schema(
            target.rt, target.version, body, req.param("fieldValidation") or ""
        )
        stored = self.update_object(target, obj, dry=self._dry_run(req), manager=field_manager(req))
        return Response(200, self.out(stored, target), self._warning_headers(warnings))

    def update_object(
        self, target: Target, new: dict[str, Any], *, dry: bool, manager: str | None
    ) -> dict[str, Any]:
        """Check preconditions and rules, then store an updated object."""
        rt = target.rt
        old = self._existing(target)
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
        current = self.out(self._existing(target), target)
        if ctype == patching.JSON_PATCH:
            new = patching.json_patch(current, patch)
        elif ctype == patching.MERGE_PATCH:
            new = patching.merge_patch(current, patch)
        else:
            new = patching.strategic_merge(current, patch, schema.root(rt.group, target.version, rt.kind))
        if not isinstance(new, dict):
            raise bad_request("the patched object is not a JSON object")
        new = self._incoming(target, new)
        if meta(new).get("name") != target.name:
            raise bad_request(
                f"the name of the object ({meta(new).get('name')}) does not match the name on the URL ({target.name})"
            )
        new, warnings = validation.check_schema(rt, target.version, new, req.param("fieldValidation") or "")
        stored = self.update_object(target, new, dry=self._dry_run(req), manager=field_manager(req))
        return Response(200, self.out(stored, target), self._warning_headers(warnings))

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
        config = self._decode(req, yaml_ok=True)
        if not config.get("apiVersion") or not config.get("kind"):
            raise bad_request("apiVersion and kind must be set in an apply configuration")
        config = self._incoming(target, config)
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
        dry = self._dry_run(req)
        node = schema.root(rt.group, target.version, rt.kind)
        old = self.store.get(rt.key, target.namespace, target.name)
        stamp = now()
        if old is None:
            obj = ssa.apply(
                None, config, node, manager=manager, force=force, api_version=target.api_version, time=stamp
            )
            obj = self._incoming(target, obj)
            meta(obj)["name"] = target.name
            stored = self.create_object(target, obj, dry=dry, manager=None)
            return Response(201, self.out(stored, target), self._warning_headers(warnings))
        wanted_rv = m.get("resourceVersion")
        if wanted_rv and wanted_rv != old["metadata"]["resourceVersion"]:
            raise conflict(rt.plural, target.name, rt.group)
        new = ssa.apply(
            self.out(old, target),
            config,
            node,
            manager=manager,
            force=force,
            api_version=target.api_version,
            time=stamp,
        )
        stored = self.update_object(target, new, dry=dry, manager=None)
        return Response(200, self.out(stored, target), self._warning_headers(warnings))

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
        old = self._existing(target)
        options = self._delete_options(req)
        dry = self._dry_run(req) or "All" in (options.get("dryRun") or [])
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
            return self.out(obj, target)
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
        dry = self._dry_run(req)
        deleted = []
        for obj in self.store.list(rt.key, target.namespace or None):
            if not (matches(labels, obj["metadata"].get("labels")) and fields_match(fields, obj)):
                continue
            one = Target(
                rt, target.version, obj["metadata"].get("namespace", ""), obj["metadata"]["name"], ""
            )
            deleted.append(self.out(self.delete_object(one, obj, dry=dry), target))
        return Response(
            200,
            {
                "kind": f"{rt.kind}List",
                "apiVersion": target.api_version,
                "metadata": {"resourceVersion": str(self.store.resource_version)},
                "items": deleted,
            },
        )


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
