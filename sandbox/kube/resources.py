"""The resource types the stand-in serves: group, versions, plural, kind, scope and verbs.

Discovery, OpenAPI, routing and storage all read this one table. Objects are stored once
per (group, plural) whatever version they were written through, like etcd holds one
storage version; a read through another served version only rewrites `apiVersion` (the
admissionregistration v1beta1 and v1 MutatingAdmissionPolicy shapes are the same).
"""

from __future__ import annotations

from dataclasses import dataclass

VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


@dataclass(frozen=True)
class ResourceType:
    """One REST resource (e.g. pods) with what discovery says about it."""

    group: str
    versions: tuple[str, ...]  # served versions, preferred first
    plural: str
    kind: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    verbs: tuple[str, ...] = VERBS
    subresources: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()

    @property
    def key(self) -> tuple[str, str]:
        """Return the storage key: (group, plural)."""
        return (self.group, self.plural)

    @property
    def singular(self) -> str:
        return self.kind.lower()

    def api_version(self, version: str | None = None) -> str:
        """Return `apiVersion` for the given served version (default: preferred)."""
        version = version or self.versions[0]
        return f"{self.group}/{version}" if self.group else version

    @property
    def status_subresource(self) -> bool:
        return "status" in self.subresources


CORE = ""
RBAC = "rbac.authorization.k8s.io"
NETWORKING = "networking.k8s.io"
ADMISSION = "admissionregistration.k8s.io"
AUTHORIZATION = "authorization.k8s.io"

RESOURCE_TYPES: tuple[ResourceType, ...] = (
    ResourceType(
        CORE,
        ("v1",),
        "namespaces",
        "Namespace",
        False,
        ("ns",),
        ("create", "delete", "get", "list", "patch", "update", "watch"),
        ("status", "finalize"),
    ),
    ResourceType(CORE, ("v1",), "nodes", "Node", False, ("no",), subresources=("status",)),
    ResourceType(CORE, ("v1",), "pods", "Pod", True, ("po",), subresources=("status",), categories=("all",)),
    ResourceType(CORE, ("v1",), "configmaps", "ConfigMap", True, ("cm",)),
    ResourceType(
        CORE, ("v1",), "resourcequotas", "ResourceQuota", True, ("quota",), subresources=("status",)
    ),
    ResourceType(CORE, ("v1",), "limitranges", "LimitRange", True, ("limits",)),
    ResourceType(CORE, ("v1",), "serviceaccounts", "ServiceAccount", True, ("sa",)),
    ResourceType(CORE, ("v1",), "events", "Event", True, ("ev",)),
    ResourceType(RBAC, ("v1",), "roles", "Role", True),
    ResourceType(RBAC, ("v1",), "rolebindings", "RoleBinding", True),
    ResourceType(RBAC, ("v1",), "clusterroles", "ClusterRole", False),
    ResourceType(RBAC, ("v1",), "clusterrolebindings", "ClusterRoleBinding", False),
    ResourceType(NETWORKING, ("v1",), "networkpolicies", "NetworkPolicy", True, ("netpol",)),
    ResourceType(ADMISSION, ("v1", "v1beta1"), "mutatingadmissionpolicies", "MutatingAdmissionPolicy", False),
    ResourceType(
        ADMISSION,
        ("v1", "v1beta1"),
        "mutatingadmissionpolicybindings",
        "MutatingAdmissionPolicyBinding",
        False,
    ),
    ResourceType(
        AUTHORIZATION,
        ("v1",),
        "selfsubjectaccessreviews",
        "SelfSubjectAccessReview",
        False,
        verbs=("create",),
    ),
)

BY_KEY = {rt.key: rt for rt in RESOURCE_TYPES}


def lookup(group: str, version: str, plural: str) -> ResourceType | None:
    """Return the resource type served at group/version/plural, or None."""
    rt = BY_KEY.get((group, plural))
    if rt is None or version not in rt.versions:
        return None
    return rt


def by_kind(kind: str, group: str = CORE) -> ResourceType:
    """Return the resource type of a kind (raises KeyError when unknown)."""
    for rt in RESOURCE_TYPES:
        if rt.kind == kind and rt.group == group:
            return rt
    raise KeyError(kind)


def group_versions() -> dict[str, tuple[str, ...]]:
    """Return {group: served versions, preferred first}, core group included as ""."""
    result: dict[str, list[str]] = {}
    for rt in RESOURCE_TYPES:
        versions = result.setdefault(rt.group, [])
        for v in rt.versions:
            if v not in versions:
                versions.append(v)
    return {g: tuple(v) for g, v in result.items()}
