"""Tear a lease's namespace down: guard, delete, and wait (bounded) until it is gone.

Requests: GET (guard) + DELETE + one GET per poll until 404, so 3 when the namespace is gone
by the first poll; 1 when it was gone already. Deleting the namespace removes everything in
it, so the bundle's other objects need no requests of their own. The cluster-wide pinning
policy is shared by every lease and stays.

The DELETE carries the uid read by the guard as a precondition, so a namespace deleted and
re-created by someone else between the read and the delete is refused by the server instead
of deleted.

Part of provisioners.bundle; imported by workflows.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from kubernetes.client import ApiClient

from leases.errors import TemporaryError
from provisioners.bundle.guard import is_terminating, read_namespace
from provisioners.bundle.spec import BundleSpec
from provisioners.kube import KubeNotFound, RetryPolicy, request

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
        body = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Foreground"}
        if uid:
            body["preconditions"] = {"uid": uid}
        try:
            retry.call(
                request, api_client, "DELETE", path,
                query=[("propagationPolicy", "Foreground")], body=body,
                what=f"delete namespace {spec.namespace}",
            )
        except KubeNotFound:
            return True
    deadline = clock() + timeout
    while True:
        sleep(min(poll, max(0.0, deadline - clock())))
        try:
            seen = retry.call(request, api_client, "GET", path, what=f"get namespace {spec.namespace}")
        except KubeNotFound:
            seen = None
        # A namespace with another uid is a new one someone created after ours was gone.
        if seen is None or (uid and (seen.get("metadata") or {}).get("uid") != uid):
            logger.info(
                "lease.bundle.deleted lease=%s namespace=%s", spec.lease_id, spec.namespace,
                extra={"event": "lease.bundle.deleted", "lease_id": spec.lease_id,
                       "namespace": spec.namespace},
            )
            return True
        if clock() >= deadline:
            raise TemporaryError(
                f"namespace {spec.namespace} is still terminating after {timeout:.0f}s", delay=poll
            )
