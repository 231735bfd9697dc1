"""Apply a lease's namespace bundle to a cluster: create, adopt, update and repair drift.

Every write is server-side apply with one field manager (PATCH `?fieldManager=gpulease&force=true`,
`application/apply-patch+yaml`) sent straight through `ApiClient.call_api`: no discovery
requests, one request per object. Applying the same spec twice changes nothing; applying it
after someone edited the quota or deleted the RoleBinding puts them back.

The RoleBinding, which lets the requester in, goes last, and only once both quotas are in
force. An API server enforces a quota's `status.hard`, not its `spec.hard`, and only the
quota controller in kube-controller-manager copies one to the other: a new quota limits
nothing, and a changed one keeps its old limits, until it has. So before the binding, each
quota whose apply answer does not show `status.hard` equal to `spec.hard` is read again
(GET, every `QUOTA_SYNC_POLL` seconds, for at most `QUOTA_SYNC_TIMEOUT`) until it does;
a quota that is still not synced then fails the apply as a TemporaryError, with no binding
written.

Requests for a new namespace: GET (ownership guard, 404) + POST namespace + one apply each for
the two quotas, limits and network policy + one GET per quota (a new quota's apply answer
precedes the controller's sync) + the role binding's apply = 9 when the controller has synced
by the first read; plus 2 the first time a client applies the cluster-wide pinning policy and
binding (mutating-admission-policy pinning only). A re-apply of an unchanged namespace is 6
(the namespace itself is only written when its labels or annotations differ from the spec,
and an unchanged quota's apply answer shows it synced).

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
import time
import weakref
from collections.abc import Callable
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
# How long apply waits for the quota controller to sync the quotas before it gives up (the
# step is retried later), and how often it reads them meanwhile. The controller normally
# syncs a quota well within a second of its write.
QUOTA_SYNC_TIMEOUT = 30.0
QUOTA_SYNC_POLL = 0.5

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
    quota_timeout: float = QUOTA_SYNC_TIMEOUT,
    quota_poll: float = QUOTA_SYNC_POLL,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> Applied:
    """Create, adopt or update the lease's namespace and its objects; repair drift."""
    retry = retry or RetryPolicy()
    objects = render(spec)
    cluster_wide = [o for o in objects if not _namespaced(o) and o["kind"] != "Namespace"]
    namespace_obj = next(o for o in objects if o["kind"] == "Namespace")
    inside = [o for o in objects if _namespaced(o) and o["kind"] != "RoleBinding"]
    access = [o for o in objects if o["kind"] == "RoleBinding"]
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

    quotas: list[dict[str, Any]] = []
    for obj in inside:
        answer = _apply_namespaced(api_client, obj, field_manager=field_manager, retry=retry)
        written.append(f"{obj['kind']}/{obj['metadata']['name']}")
        if obj["kind"] == "ResourceQuota":
            quotas.append(answer)
    wait_for_quotas(
        api_client, quotas, timeout=quota_timeout, poll=quota_poll, retry=retry, sleep=sleep, clock=clock
    )
    for obj in access:
        _apply_namespaced(api_client, obj, field_manager=field_manager, retry=retry)
        written.append(f"{obj['kind']}/{obj['metadata']['name']}")

    logger.info(
        "lease.bundle.applied lease=%s namespace=%s created=%s objects=%d",
        spec.lease_id, spec.namespace, created, len(written),
        extra={"event": "lease.bundle.applied", "lease_id": spec.lease_id,
               "namespace": spec.namespace, "created": created, "written": written},
    )
    return Applied(namespace=spec.namespace, namespace_created=created, written=tuple(written))


def wait_for_quotas(
    api_client: ApiClient,
    quotas: list[dict[str, Any]],
    *,
    timeout: float = QUOTA_SYNC_TIMEOUT,
    poll: float = QUOTA_SYNC_POLL,
    retry: RetryPolicy,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Wait until every quota (as last read or applied) shows status.hard equal to its spec.hard."""
    pending = [q for q in quotas if not quota_synced(q)]
    deadline = clock() + timeout
    while pending:
        pending = [q for q in (_read_quota(api_client, q, retry=retry) for q in pending) if not quota_synced(q)]
        if not pending:
            return
        if clock() >= deadline:
            raise _not_synced(pending[0], timeout=timeout)
        sleep(min(poll, max(0.0, deadline - clock())))


def quota_synced(quota: dict[str, Any]) -> bool:
    """Tell whether the quota controller has synced a quota: only status.hard is enforced."""
    hard = (quota.get("spec") or {}).get("hard") or {}
    return ((quota.get("status") or {}).get("hard") or {}) == hard


def _read_quota(api_client: ApiClient, quota: dict[str, Any], *, retry: RetryPolicy) -> dict[str, Any]:
    return retry.call(request, api_client, "GET", object_path(quota), what=f"get {describe(quota)}")


def _not_synced(quota: dict[str, Any], *, timeout: float) -> TemporaryError:
    meta = quota["metadata"]
    hard = (quota.get("spec") or {}).get("hard") or {}
    status = (quota.get("status") or {}).get("hard")
    logger.warning(
        "lease.bundle.quota_not_synced namespace=%s quota=%s timeout=%.0fs",
        meta["namespace"], meta["name"], timeout,
        extra={"event": "lease.bundle.quota_not_synced", "namespace": meta["namespace"],
               "quota": meta["name"], "spec_hard": hard, "status_hard": status},
    )
    enforced = f"still enforces {_quantities(status)}" if status else "limits nothing yet"
    return TemporaryError(
        f"resource quota {meta['name']} in namespace {meta['namespace']}: the quota controller "
        f"(kube-controller-manager) has not synced it yet after {timeout:.0f}s, so it {enforced} "
        f"instead of {_quantities(hard)}; the requester's access is held back until it has. Check "
        "that kube-controller-manager is running and its logs; the apply is retried."
    )


def _quantities(values: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(values.items())) or "nothing"


def _apply_namespaced(
    api_client: ApiClient, obj: dict[str, Any], *, field_manager: str, retry: RetryPolicy
) -> dict[str, Any]:
    try:
        return server_side_apply(api_client, obj, field_manager=field_manager, retry=retry)
    except KubeApiError as exc:
        # roleRef is immutable: a binding pre-created (or left behind) with another role, or a
        # policy that changed cluster_role, can only be repaired by replacing the binding.
        if not (obj["kind"] == "RoleBinding" and exc.status == 422 and "roleRef" in str(exc)):
            raise
        _delete_binding(api_client, obj, retry=retry)
        return server_side_apply(api_client, obj, field_manager=field_manager, retry=retry)


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
