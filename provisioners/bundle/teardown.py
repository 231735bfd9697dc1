"""Tear a lease's namespace down: guard, delete, and wait (bounded) until it is gone.

Requests: GET (guard) + DELETE + one GET per poll until 404, so 3 when the namespace is gone
by the first poll; 1 when it was gone already. Deleting the namespace removes everything in
it, so the bundle's other objects need no requests of their own. The cluster-wide pinning
policy is shared by every lease and stays.

The DELETE asks for Background propagation, as kubectl does: Foreground would have the server
put a `foregroundDeletion` finalizer on the namespace that only the garbage collector takes
off, which adds nothing for a namespace (its contents go either way) and has left empty
namespaces terminating for good (kubernetes/kubernetes#111251).

The DELETE carries the uid read by the guard as a precondition, so a namespace deleted and
re-created by someone else between the read and the delete is refused by the server instead
of deleted.

A DELETE answered 409 Conflict is read again rather than failed: a retried DELETE whose first
attempt went through (its response lost) finds our namespace terminating, and the uid
precondition fails the same way once the name belongs to a new namespace. Our namespace
terminating → wait as usual; gone, or the name taken by another uid → done.

Part of provisioners.bundle; imported by workflows.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from kubernetes.client import ApiClient

from leases.errors import TemporaryError
from provisioners.bundle.guard import is_terminating, read_namespace
from provisioners.bundle.spec import BundleSpec
from provisioners.kube import KubeApiError, KubeNotFound, RetryPolicy, request

logger = logging.getLogger(__name__)


def teardown(
    api_client: ApiClient,
    spec: BundleSpec,
    *,
    timeout: float = 300.0,
    poll: float = 1.0,
    retry: RetryPolicy | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> bool:
    """Delete the lease's namespace and wait until it is gone; False if it was gone already."""
    retry = retry or RetryPolicy()
    path = f"/api/v1/namespaces/{spec.namespace}"
    current = read_namespace(api_client, spec, retry=retry)
    if current is None:
        return False
    uid = (current.get("metadata") or {}).get("uid")
    if not is_terminating(current):
        body = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"}
        if uid:
            body["preconditions"] = {"uid": uid}
        try:
            retry.call(
                request, api_client, "DELETE", path,
                query=[("propagationPolicy", "Background")], body=body,
                what=f"delete namespace {spec.namespace}",
            )
        except KubeNotFound:
            return True
        except KubeApiError as exc:
            if exc.status != 409:
                raise
            seen = _read(api_client, spec, retry=retry)
            if _gone(seen, uid=uid):
                return _deleted(spec)
            if not (seen and is_terminating(seen)):
                raise  # a conflict that is not about our delete having gone through
    wait_until_gone(
        api_client, spec, uid=uid, timeout=timeout, poll=poll, retry=retry, sleep=sleep, clock=clock,
        still_there=lambda _: f"namespace {spec.namespace} is still terminating after {timeout:.0f}s",
    )
    return _deleted(spec)


def wait_until_gone(
    api_client: ApiClient,
    spec: BundleSpec,
    *,
    uid: str | None,
    timeout: float,
    poll: float,
    retry: RetryPolicy,
    sleep: Callable[[float], None],
    clock: Callable[[], float],
    still_there: Callable[[dict[str, Any]], str],
) -> None:
    """Read the lease's namespace every `poll` seconds until it is gone; after `timeout` raise
    TemporaryError with `still_there(what was last read)`.

    Gone is a 404 or a namespace of that name with another uid (someone created a new one after
    ours was gone). Reading only, and without the ownership guard: once ours is gone, the name
    may be anyone's."""
    deadline = clock() + timeout
    while True:
        sleep(min(poll, max(0.0, deadline - clock())))
        seen = _read(api_client, spec, retry=retry)
        if _gone(seen, uid=uid):
            return
        if clock() >= deadline:
            raise TemporaryError(still_there(seen or {}), delay=poll)


def _read(api_client: ApiClient, spec: BundleSpec, *, retry: RetryPolicy) -> dict[str, Any] | None:
    try:
        return retry.call(
            request, api_client, "GET", f"/api/v1/namespaces/{spec.namespace}",
            what=f"get namespace {spec.namespace}",
        )
    except KubeNotFound:
        return None


def _gone(seen: dict[str, Any] | None, *, uid: str | None) -> bool:
    return seen is None or bool(uid and (seen.get("metadata") or {}).get("uid") != uid)


def _deleted(spec: BundleSpec) -> bool:
    logger.info(
        "lease.bundle.deleted lease=%s namespace=%s", spec.lease_id, spec.namespace,
        extra={"event": "lease.bundle.deleted", "lease_id": spec.lease_id, "namespace": spec.namespace},
    )
    return True
