"""Ownership guard: the platform only changes or deletes namespaces that are its own lease's.

A namespace may be changed or deleted only when it carries both
`app.kubernetes.io/managed-by=gpulease` and `gpulease.io/lease=<this lease's id>`. A namespace
that does not exist yet may be created. Anything else raises `OwnershipError` before any
write, naming the namespace and the label that was wrong.

`OwnershipError` is a `DomainError` (not an infrastructure error): it is a refusal to be
reported to admins and the requester as is ("namespace ml-x belongs to another lease"), never
retried, and a workflow step failing on it must compensate without touching the namespace.

Part of provisioners.bundle; imported by provisioners and workflows.
"""

from __future__ import annotations

from typing import Any

from kubernetes.client import ApiClient

from leases.errors import DomainError
from provisioners.bundle.render import LEASE_LABEL, MANAGED_BY, MANAGER
from provisioners.bundle.spec import BundleSpec
from provisioners.kube import KubeNotFound, RetryPolicy, request


class OwnershipError(DomainError):
    """A namespace exists but is not this lease's to change or delete."""

    def __init__(self, message: str, *, namespace: str, label: str, found: str | None) -> None:
        super().__init__(message, field="namespace")
        self.namespace = namespace
        self.label = label
        self.found = found


def check_owned(obj: dict[str, Any], spec: BundleSpec) -> None:
    """Raise OwnershipError unless a read namespace object belongs to the spec's lease."""
    labels = (obj.get("metadata") or {}).get("labels") or {}
    name = spec.namespace
    manager = labels.get(MANAGED_BY)
    if manager != MANAGER:
        found = f"{MANAGED_BY}={manager}" if manager is not None else f"no {MANAGED_BY} label"
        raise OwnershipError(
            f"namespace {name} is not managed by gpulease ({found}); it is left untouched",
            namespace=name,
            label=MANAGED_BY,
            found=manager,
        )
    lease = labels.get(LEASE_LABEL)
    if lease != spec.lease_id:
        found = f"{LEASE_LABEL}={lease}" if lease is not None else f"no {LEASE_LABEL} label"
        raise OwnershipError(
            f"namespace {name} belongs to another lease ({found}, expected {spec.lease_id}); "
            "it is left untouched",
            namespace=name,
            label=LEASE_LABEL,
            found=lease,
        )


def read_namespace(api_client: ApiClient, spec: BundleSpec, *, retry: RetryPolicy) -> dict[str, Any] | None:
    """Read the lease's namespace and check it is ours; None when it does not exist (yet)."""
    try:
        obj = retry.call(
            request, api_client, "GET", f"/api/v1/namespaces/{spec.namespace}",
            what=f"get namespace {spec.namespace}",
        )
    except KubeNotFound:
        return None
    check_owned(obj, spec)
    return obj


def is_terminating(obj: dict[str, Any]) -> bool:
    """Tell whether a read namespace is being deleted."""
    return bool((obj.get("metadata") or {}).get("deletionTimestamp")) or (
        (obj.get("status") or {}).get("phase") == "Terminating"
    )
