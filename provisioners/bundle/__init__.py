"""A lease's namespace bundle (DESIGN §5): spec, rendering, apply, ownership guard, teardown.

    spec = spec_from(policy, lease_id=..., namespace=..., cluster=..., tier=..., team=...,
                     requester=..., email=..., units=..., expires_at=...)
    apply(api_client, spec, retry=policy)       # create / adopt / update / repair drift
    teardown(api_client, spec, timeout=300, poll=2)

May import leases and config (through provisioners). Imported by workflows.
"""

from provisioners.bundle.apply import FIELD_MANAGER, Applied, apply, apply_cluster_objects, object_path
from provisioners.bundle.guard import OwnershipError, check_owned, read_namespace
from provisioners.bundle.render import render, render_cluster_objects
from provisioners.bundle.spec import BundleSpec, Toleration, spec_from
from provisioners.bundle.teardown import teardown

__all__ = [
    "FIELD_MANAGER",
    "Applied",
    "BundleSpec",
    "OwnershipError",
    "Toleration",
    "apply",
    "apply_cluster_objects",
    "check_owned",
    "object_path",
    "read_namespace",
    "render",
    "render_cluster_objects",
    "spec_from",
    "teardown",
]
