"""Apply a lease's namespace bundle to a cluster: create, adopt, update and repair drift.

Every write is server-side apply with one field manager (PATCH `?fieldManager=gpulease&force=true`,
`application/apply-patch+yaml`) sent straight through `ApiClient.call_api`: no discovery
requests, one request per object. Applying the same spec twice changes nothing; applying it
after someone edited the quota or deleted the RoleBinding puts them back.

Requests for a new namespace: GET (ownership guard, 404) + POST namespace + one apply each for
the two quotas, limits, network policy and role binding = 7; plus 2 the first time a client
applies the cluster-wide pinning policy and binding (mutating-admission-policy pinning only).
A re-apply of an unchanged namespace is 6 (the namespace itself is only written when its
labels or annotations differ from the spec).

The namespace is created with POST, not apply, because only a create can fail when the name
was taken in the meantime: apply would silently take over a namespace someone else created
between our guard read and our write. A create answered AlreadyExists is re-read and adopted
only when it carries this lease's labels.

Part of provisioners.bundle; imported by workflows.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import weakref
from dataclasses import dataclass
from typing import Any

from kubernetes.client import ApiClient

from leases.errors import TemporaryError
from provisioners.bundle.guard import is_terminating, read_namespace
from provisioners.bundle.render import ADMISSION_API, namespace_annotations, namespace_labels, render
from provisioners.bundle.spec import BundleSpec
from provisioners.kube import APPLY_PATCH, KubeAlreadyExists, KubeApiError, KubeNotFound, RetryPolicy, request

logger = logging.getLogger(__name__)

FIELD_MANAGER = "gpulease"

# (apiVersion, kind) → (API prefix, plural, namespaced). A static table instead of discovery:
# the bundle uses a handful of fixed kinds, and discovery would cost requests on every start.
RESOURCES: dict[tuple[str, str], tuple[str, str, bool]] = {
    ("v1", "Namespace"): ("/api/v1", "namespaces", False),
    ("v1", "ResourceQuota"): ("/api/v1", "resourcequotas", True),
    ("v1", "LimitRange"): ("/api/v1", "limitranges", True),
    ("networking.k8s.io/v1", "NetworkPolicy"): ("/apis/networking.k8s.io/v1", "networkpolicies", True),
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): (
        "/apis/rbac.authorization.k8s.io/v1", "rolebindings", True,
    ),
    (ADMISSION_API, "MutatingAdmissionPolicy"): (
        f"/apis/{ADMISSION_API}", "mutatingadmissionpolicies", False,
    ),
    (ADMISSION_API, "MutatingAdmissionPolicyBinding"): (
        f"/apis/{ADMISSION_API}", "mutatingadmissionpolicybindings", False,
    ),
}

# Cluster-wide objects already applied through a given client, by content digest: they are
# the same for every lease, so one apply per client (per process and cluster) is enough.
_cluster_applied: weakref.WeakKeyDictionary[ApiClient, set[str]] = weakref.WeakKeyDictionary()
_cluster_lock = threading.Lock()


@dataclass(frozen=True)
class Applied:
    """What one apply wrote."""

    namespace: str
    namespace_created: bool
    written: tuple[str, ...]  # "Kind/name" of every object sent, in order


def object_path(obj: dict[str, Any], *, collection: bool = False) -> str:
    """Return the API path of an object (or of its collection, for a create)."""
    key = (obj["apiVersion"], obj["kind"])
    if key not in RESOURCES:
        raise ValueError(f"no API path known for {obj['kind']} ({obj['apiVersion']})")
    prefix, plural, namespaced = RESOURCES[key]
    meta = obj["metadata"]
    base = f"{prefix}/namespaces/{meta['namespace']}/{plural}" if namespaced else f"{prefix}/{plural}"
    return base if collection else f"{base}/{meta['name']}"


def describe(obj: dict[str, Any]) -> str:
    """Return "kind namespace/name" for messages and retry logs."""
    meta = obj["metadata"]
    where = f"{meta['namespace']}/{meta['name']}" if meta.get("namespace") else meta["name"]
    return f"{obj['kind'].lower()} {where}"


def server_side_apply(
    api_client: ApiClient, obj: dict[str, Any], *, field_manager: str, retry: RetryPolicy
) -> dict[str, Any]:
    """Create or update one object with server-side apply, forcing ownership of its fields."""
    return retry.call(
        request,
        api_client,
        "PATCH",
        object_path(obj),
        query=[("fieldManager", field_manager), ("force", "true")],
        body=obj,
        content_type=APPLY_PATCH,
        what=f"apply {describe(obj)}",
    )


def apply_cluster_objects(
    api_client: ApiClient,
    objects: list[dict[str, Any]],
    *,
    field_manager: str = FIELD_MANAGER,
    retry: RetryPolicy,
    force: bool = False,
) -> bool:
    """Apply cluster-wide objects unless this client applied the same ones; tell if it wrote."""
    if not objects:
        return False
    digest = hashlib.sha256(json.dumps(objects, sort_keys=True).encode()).hexdigest()
    with _cluster_lock:
        if not force and digest in _cluster_applied.get(api_client, set()):
            return False
    for obj in objects:
        server_side_apply(api_client, obj, field_manager=field_manager, retry=retry)
    with _cluster_lock:
        _cluster_applied.setdefault(api_client, set()).add(digest)
    return True


def apply(
    api_client: ApiClient,
    spec: BundleSpec,
    *,
    field_manager: str = FIELD_MANAGER,
    retry: RetryPolicy | None = None,
) -> Applied:
    """Create, adopt or update the lease's namespace and its objects; repair drift."""
    retry = retry or RetryPolicy()
    objects = render(spec)
    cluster_wide = [o for o in objects if not _namespaced(o) and o["kind"] != "Namespace"]
    namespace_obj = next(o for o in objects if o["kind"] == "Namespace")
    inside = [o for o in objects if _namespaced(o)]
    written: list[str] = []

    if apply_cluster_objects(api_client, cluster_wide, field_manager=field_manager, retry=retry):
        written += [f"{o['kind']}/{o['metadata']['name']}" for o in cluster_wide]

    created = False
    current = read_namespace(api_client, spec, retry=retry)
    if current is None:
        try:
            retry.call(
                request, api_client, "POST", object_path(namespace_obj, collection=True),
                query=[("fieldManager", field_manager)], body=namespace_obj,
                what=f"create namespace {spec.namespace}",
            )
            created = True
            written.append(f"Namespace/{spec.namespace}")
        except KubeAlreadyExists:
            # Created by someone else since our read (or by our own earlier attempt whose
            # response was lost): adopt it only if it is labelled for this lease.
            current = read_namespace(api_client, spec, retry=retry)
            if current is None:
                raise TemporaryError(
                    f"namespace {spec.namespace} appeared and vanished while being created"
                ) from None
    if current is not None:
        if is_terminating(current):
            raise TemporaryError(f"namespace {spec.namespace} is being deleted; apply again once it is gone")
        if _namespace_differs(current, spec):
            server_side_apply(api_client, namespace_obj, field_manager=field_manager, retry=retry)
            written.append(f"Namespace/{spec.namespace}")

    for obj in inside:
        _apply_namespaced(api_client, obj, field_manager=field_manager, retry=retry)
        written.append(f"{obj['kind']}/{obj['metadata']['name']}")

    logger.info(
        "lease.bundle.applied lease=%s namespace=%s created=%s objects=%d",
        spec.lease_id, spec.namespace, created, len(written),
        extra={"event": "lease.bundle.applied", "lease_id": spec.lease_id,
               "namespace": spec.namespace, "created": created, "written": written},
    )
    return Applied(namespace=spec.namespace, namespace_created=created, written=tuple(written))


def _apply_namespaced(
    api_client: ApiClient, obj: dict[str, Any], *, field_manager: str, retry: RetryPolicy
) -> None:
    try:
        server_side_apply(api_client, obj, field_manager=field_manager, retry=retry)
    except KubeApiError as exc:
        # roleRef is immutable: a binding pre-created (or left behind) with another role, or a
        # policy that changed cluster_role, can only be repaired by replacing the binding.
        if not (obj["kind"] == "RoleBinding" and exc.status == 422 and "roleRef" in str(exc)):
            raise
        _delete_binding(api_client, obj, retry=retry)
        server_side_apply(api_client, obj, field_manager=field_manager, retry=retry)


def _delete_binding(api_client: ApiClient, obj: dict[str, Any], *, retry: RetryPolicy) -> None:
    """Delete the binding found in obj's place, and only that one (uid precondition)."""
    path = object_path(obj)
    try:
        found = retry.call(request, api_client, "GET", path, what=f"get {describe(obj)}")
    except KubeNotFound:
        return
    body = {"kind": "DeleteOptions", "apiVersion": "v1", "preconditions": {"uid": found["metadata"]["uid"]}}
    try:
        retry.call(request, api_client, "DELETE", path, body=body, what=f"delete {describe(obj)}")
    except KubeNotFound:
        pass  # gone already: a retry whose first attempt went through (its response lost)
    except KubeApiError as exc:
        if exc.status != 409:
            raise
        # The uid precondition failed: someone put another binding there since our read. The
        # apply that follows keeps it if its roleRef is right, and refuses it (422) if not.


def _namespaced(obj: dict[str, Any]) -> bool:
    return RESOURCES[(obj["apiVersion"], obj["kind"])][2]


def _namespace_differs(current: dict[str, Any], spec: BundleSpec) -> bool:
    meta = current.get("metadata") or {}
    labels = meta.get("labels") or {}
    annotations = meta.get("annotations") or {}
    want_labels = namespace_labels(spec)
    want_annotations = namespace_annotations(spec)
    return any(labels.get(k) != v for k, v in want_labels.items()) or any(
        annotations.get(k) != v for k, v in want_annotations.items()
    )
