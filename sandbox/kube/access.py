"""Authorization stand-in: everything is allowed unless a test denies (verb, resource)
pairs. Denials answer SelfSubjectAccessReviews and, by default, are enforced on real
requests with the RBAC wording, so a pre-flight check and the request itself agree.
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass
from typing import Any

from .errors import ApiError

USER = "sandbox-admin"


@dataclass(frozen=True)
class DenyRule:
    """Deny `verb` on `resource` (in `group`, optionally one `namespace`); "*" matches all."""

    verb: str
    resource: str
    group: str = "*"
    namespace: str = "*"
    subresource: str = ""
    enforce: bool = True

    def matches(self, verb: str, resource: str, group: str, namespace: str, subresource: str) -> bool:
        return (
            self.verb in ("*", verb)
            and self.resource in ("*", resource)
            and self.group in ("*", group)
            and self.namespace in ("*", namespace)
            and self.subresource in ("*", subresource)
        )


class Access:
    """The deny rules and the two ways they are consulted."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[DenyRule] = []

    def deny(self, rule: DenyRule) -> None:
        with self._lock:
            self._rules.append(rule)

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def rules(self) -> list[dict[str, Any]]:
        with self._lock:
            return [asdict(r) for r in self._rules]

    def _denied(
        self, verb: str, resource: str, group: str, namespace: str, subresource: str, enforced_only: bool
    ) -> bool:
        with self._lock:
            return any(
                r.matches(verb, resource, group, namespace, subresource)
                for r in self._rules
                if r.enforce or not enforced_only
            )

    def enforce(
        self, verb: str, resource: str, group: str, namespace: str, name: str, subresource: str
    ) -> None:
        """Raise 403 like RBAC when an enforced rule denies this request."""
        if not self._denied(verb, resource, group, namespace, subresource, enforced_only=True):
            return
        full = f"{resource}/{subresource}" if subresource else resource
        scope = f'in the namespace "{namespace}"' if namespace else "at the cluster scope"
        target = f'{full}.{group} "{name}"' if group else f'{full} "{name}"'
        if not name:
            target = f"{full}.{group}" if group else full
        raise ApiError(
            403,
            f'{target} is forbidden: User "{USER}" cannot {verb} resource "{full}" in API group '
            f'"{group}" {scope}',
            details={"name": name, "group": group, "kind": resource}
            if name
            else {"group": group, "kind": resource},
        )

    def review(self, body: dict[str, Any]) -> dict[str, Any]:
        """Answer a SelfSubjectAccessReview."""
        spec = body.get("spec") or {}
        attrs = spec.get("resourceAttributes")
        if attrs is not None:
            denied = self._denied(
                attrs.get("verb", ""),
                attrs.get("resource", ""),
                attrs.get("group", ""),
                attrs.get("namespace", ""),
                attrs.get("subresource", ""),
                enforced_only=False,
            )
        else:
            denied = False  # non-resource URLs are always allowed here
        status: dict[str, Any] = {"allowed": not denied}
        if denied:
            status["denied"] = True
            status["reason"] = "denied by the sandbox's access rules"
        else:
            status["reason"] = "allowed by the sandbox (no deny rule matches)"
        result = dict(body)
        result.setdefault("metadata", {}).setdefault("creationTimestamp", None)
        result["status"] = status
        return result
