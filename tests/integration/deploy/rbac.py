"""RBAC arithmetic for the ClusterRole test: what a recorded API request needs, and what a
ClusterRole grants, both as sets of `Permission`.

A request's path is split the way the API server's RequestInfoFactory does (core group "",
`namespaces/NS/...` scoping, `status` and `finalize` as subresources of a namespace) and its
method mapped to the verb RBAC checks: GET on a collection → list (watch=true → watch), GET
on a name → get, POST → create, PUT → update, PATCH → patch, DELETE → delete (on a
collection → deletecollection). Server-side apply is a PATCH, but an apply may create its
object, and then the API server checks `create` as well (its patch handler authorises the
create before storing): `apply_permissions` adds that `create` for every apply request.

Writing a RoleBinding also needs `bind` on the role it refers to, unless the writer already
holds every permission of that role (the API server's escalation check, which the sandbox
does not simulate): `bind_permissions` derives those from the request bodies.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

NAMESPACE_SUBRESOURCES = frozenset({"status", "finalize"})
RBAC_GROUP = "rbac.authorization.k8s.io"
APPLY_PATCH = "application/apply-patch"  # +yaml, or +cbor from newer clients


@dataclass(frozen=True, order=True)
class Permission:
    """One grant: `verb` on `resource` ("plural" or "plural/subresource") of API `group`,
    limited to the object `name` when it is not empty."""

    group: str
    resource: str
    verb: str
    name: str = ""

    def __str__(self) -> str:
        group = self.group or '""'
        named = f" [{self.name}]" if self.name else ""
        return f"{group} {self.resource} {self.verb}{named}"


@dataclass(frozen=True)
class RequestInfo:
    """What the API server reads from a request's path."""

    group: str
    resource: str
    subresource: str
    namespace: str
    name: str


def request_info(path: str) -> RequestInfo:
    """Split a resource path; ValueError for anything that is not a resource request."""
    parts = [p for p in path.split("/") if p]
    if parts[:2] == ["api", "v1"]:
        group, rest = "", parts[2:]
    elif len(parts) >= 3 and parts[0] == "apis":
        group, rest = parts[1], parts[3:]
    else:
        raise ValueError(f"{path} is not a resource path (discovery or a non-resource URL)")
    if not rest:
        raise ValueError(f"{path} names an API group version, not a resource")
    namespace = ""
    if rest[0] == "namespaces" and len(rest) > 1:
        namespace = rest[1]
        # namespaces/NAME/status|finalize are the namespace's own subresources; anything else
        # after the name is a resource inside that namespace.
        if len(rest) > 2 and rest[2] not in NAMESPACE_SUBRESOURCES:
            rest = rest[2:]
    resource = rest[0]
    name = rest[1] if len(rest) > 1 else ""
    subresource = "/".join(rest[2:])
    if resource == "namespaces":
        namespace = ""
    return RequestInfo(group, resource, subresource, namespace, name)


def verb_of(method: str, *, named: bool, query: dict[str, list[str]]) -> str:
    """Return the RBAC verb of an HTTP method on a name or a collection."""
    method = method.upper()
    if method == "GET":
        if named:
            return "get"
        return "watch" if (query.get("watch") or [""])[0] in ("true", "1") else "list"
    verbs = {"POST": "create", "PUT": "update", "PATCH": "patch"}
    if method in verbs:
        return verbs[method]
    if method == "DELETE":
        return "delete" if named else "deletecollection"
    raise ValueError(f"no RBAC verb for HTTP {method}")


def permission_of(method: str, path: str, query: dict[str, list[str]] | None = None) -> Permission:
    """Return the permission a request needs (unrestricted by name, as the role grants it)."""
    info = request_info(path)
    resource = f"{info.resource}/{info.subresource}" if info.subresource else info.resource
    return Permission(info.group, resource, verb_of(method, named=bool(info.name), query=query or {}))


def apply_permissions(method: str, path: str, content_type: str) -> set[Permission]:
    """Return the `create` a server-side apply needs, since it creates an absent object."""
    if method.upper() != "PATCH" or not content_type.startswith(APPLY_PATCH):
        return set()
    info = request_info(path)
    if info.subresource:
        return set()  # an apply to a subresource never creates the object
    return {Permission(info.group, info.resource, "create")}


def bind_permissions(method: str, path: str, body: Any) -> set[Permission]:
    """Return the `bind` a RoleBinding write needs on the role its body refers to."""
    info = request_info(path)
    if info.group != RBAC_GROUP or info.resource not in ("rolebindings", "clusterrolebindings"):
        return set()
    if method.upper() not in ("POST", "PUT", "PATCH") or not isinstance(body, dict):
        return set()
    ref = body.get("roleRef") or {}
    if not ref.get("name"):
        return set()
    plural = {"ClusterRole": "clusterroles", "Role": "roles"}[ref.get("kind", "ClusterRole")]
    return {Permission(RBAC_GROUP, plural, "bind", ref["name"])}


def granted(rules: Iterable[dict[str, Any]]) -> set[Permission]:
    """Expand a ClusterRole's rules into permissions; ValueError on wildcards or URL rules."""
    out: set[Permission] = set()
    for rule in rules:
        if rule.get("nonResourceURLs"):
            raise ValueError(f"non-resource rule {rule}: a ClusterRole for the provisioners needs none")
        groups, resources, verbs = rule.get("apiGroups") or [], rule.get("resources") or [], rule.get("verbs") or []
        if "*" in groups or "*" in verbs or any("*" in r for r in resources):
            raise ValueError(f"wildcard in rule {rule}")
        names = rule.get("resourceNames") or [""]
        out |= {Permission(g, r, v, n) for g in groups for r in resources for v in verbs for n in names}
    return out
