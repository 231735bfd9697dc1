"""The Kubernetes permissions gpulease needs, in one place: what the ClusterRole grants and
what `gpulease doctor` checks with SelfSubjectAccessReviews.

Derived from the requests the provisioners make (a test compares this list with the requests
recorded by the sandbox API server and with deploy/'s ClusterRole). A server-side apply is a
PATCH, but when the object does not exist yet the API server also checks `create`, so every
kind the bundle applies needs both.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Permission:
    group: str
    resource: str
    verbs: tuple[str, ...]
    why: str
    resource_names: tuple[str, ...] = ()


REQUIRED: tuple[Permission, ...] = (
    Permission("", "namespaces", ("get", "list", "create", "patch", "delete"),
               "create, guard, update and delete lease namespaces; find orphans"),
    Permission("", "resourcequotas", ("get", "create", "patch"), "apply and export the lease quotas"),
    Permission("", "limitranges", ("get", "create", "patch"), "apply and export container defaults"),
    Permission("", "nodes", ("get", "list", "patch"), "read GPU inventory; move, drain and label nodes"),
    Permission("", "pods", ("list",), "count GPU pods per node before a move"),
    Permission("rbac.authorization.k8s.io", "rolebindings", ("get", "create", "patch", "delete"),
               "bind the requester's identity in the namespace (replaced when roleRef changes)"),
    Permission("networking.k8s.io", "networkpolicies", ("get", "create", "patch"), "isolate the namespace"),
    Permission("admissionregistration.k8s.io", "mutatingadmissionpolicies", ("create", "patch"),
               "the cluster-wide tier pinning policy (mutating-admission-policy pinning)"),
    Permission("admissionregistration.k8s.io", "mutatingadmissionpolicybindings", ("create", "patch"),
               "its binding"),
    Permission("authorization.k8s.io", "selfsubjectaccessreviews", ("create",), "gpulease doctor's checks"),
)


def bind_permission(cluster_role: str) -> Permission:
    """Return the `bind` grant that lets gpulease create RoleBindings to `cluster_role`.

    Kubernetes refuses a RoleBinding to a role with permissions its creator lacks unless the
    creator may `bind` that role; granting `bind` on the one ClusterRole is narrower than
    holding all of its permissions.
    """
    return Permission("rbac.authorization.k8s.io", "clusterroles", ("bind",),
                      f"bind requesters to ClusterRole {cluster_role}", (cluster_role,))
