"""ResourceQuota: the admission plugin that refuses objects over a namespace's quota, with
the real wording, and the quota controller that fills `status.hard`/`status.used`.

As on a real API server, admission enforces a quota's `status.hard`, not its `spec.hard`: a
new quota limits nothing, and a changed one keeps its old limits, until the quota
controller (kube-controller-manager's) has copied `spec.hard` into `status.hard`. Here it
does so as the write happens by default; `delay` makes it do so that many seconds later (on
the timer thread), and `stopped` holds every sync until it is started again (then it catches
up), for tests of what a slow or dead controller-manager lets through. A quota whose
`status.hard` names a resource its `status.used` does not is refused with "status unknown".

`status.used` is kept current at every write in the namespace, for the resources in
`status.hard` (on a real server admission itself charges each admitted object to it); usage
is counted from the objects themselves.

Counted for pods that are not Succeeded/Failed: `pods`, `count/pods`, `requests.cpu` (and
`cpu`), `requests.memory` (and `memory`), `limits.cpu`, `limits.memory`, `requests.<name>`
for any other resource such as `requests.nvidia.com/gpu`; for every type,
`count/<resource>[.<group>]` and the legacy names (`configmaps`, `resourcequotas`, ...).
If the quota covers cpu or memory, every container must state the matching request or limit.

A scoped quota (`spec.scopes`, `spec.scopeSelector`) counts and limits only the pods that
match its scope, and no other kind of object; quota_scopes.py says which scopes are read.
"""

from __future__ import annotations

from typing import Any

from . import quantity
from .admission import Attributes
from .errors import forbidden
from .quantity import Quantity
from .quota_scopes import Scope, in_scope, scope_of
from .resources import BY_KEY, ResourceType
from .scheduler import is_active, pod_limits, pod_requests
from .store import Event, Store
from .timers import TimerQueue

QUOTAS = ("", "resourcequotas")
LEGACY_COUNTS = {
    "configmaps",
    "resourcequotas",
    "secrets",
    "services",
    "persistentvolumeclaims",
    "replicationcontrollers",
}
CONSTRAINED = {"requests.cpu", "requests.memory", "limits.cpu", "limits.memory", "cpu", "memory"}


def _count_key(rt: ResourceType) -> str:
    return f"count/{rt.plural}.{rt.group}" if rt.group else f"count/{rt.plural}"


def usage(rt: ResourceType, obj: dict[str, Any]) -> dict[str, Quantity]:
    """What one object counts against quota."""
    one = quantity.parse(1)
    result = {_count_key(rt): one}
    if rt.plural in LEGACY_COUNTS:
        result[rt.plural] = one
    if rt.plural != "pods":
        return result
    if not is_active(obj):
        return {}
    result["pods"] = one
    for name, value in pod_requests(obj).items():
        result[f"requests.{name}"] = value
        if name in ("cpu", "memory"):
            result[name] = value
    for name, value in pod_limits(obj).items():
        if name in ("cpu", "memory"):
            result[f"limits.{name}"] = value
    return result


def counts(rt: ResourceType, name: str) -> bool:
    """Tell whether objects of a type can count against a quota resource name."""
    if name == _count_key(rt) or (rt.plural in LEGACY_COUNTS and name == rt.plural):
        return True
    return rt.plural == "pods" and (
        name in ("pods", "cpu", "memory") or name.startswith(("requests.", "limits."))
    )


def _pretty(values: dict[str, Quantity]) -> str:
    return ",".join(f"{k}={quantity.canonical(v)}" for k, v in sorted(values.items()))


def _missing_constraints(pod: dict[str, Any], required: set[str]) -> str:
    missing: dict[str, list[str]] = {}
    spec = pod.get("spec") or {}
    for c in (spec.get("containers") or []) + (spec.get("initContainers") or []):
        res = c.get("resources") or {}
        for key in sorted(required):
            section, _, name = key.rpartition(".")
            section = section or "requests"
            if name not in (res.get(section) or {}):
                missing.setdefault(key, []).append(c.get("name", ""))
    parts = sorted(f"{k} for: {','.join(sorted(v))}" for k, v in missing.items())
    return "; ".join(parts)


class QuotaController:
    """Admission (validate on create) plus the quota controller."""

    def __init__(self, store: Store, timers: TimerQueue, delay: float = 0.0) -> None:
        self.store = store
        self.timers = timers
        self.delay = delay
        self.stopped = False
        self._held: set[str] = set()  # namespaces with a sync held while stopped
        store.subscribe(self._on_event)

    def _quotas(self, namespace: str) -> list[tuple[dict[str, Any], Scope]]:
        """Return the namespace's quotas with their scopes, leaving out unsupported scopes."""
        quotas = ((q, scope_of(q)) for q in self.store.list(QUOTAS, namespace))
        return [(q, scope) for q, scope in quotas if scope is not None]

    def used(self, namespace: str, scope: Scope | None = None) -> dict[str, Quantity]:
        """Current usage of a namespace, over every resource quota can count (within a scope)."""
        totals: dict[str, Quantity] = {}
        for rt in BY_KEY.values():
            if not rt.namespaced:
                continue
            for obj in self.store.list(rt.key, namespace):
                if not in_scope(scope or [], rt, obj):
                    continue
                for name, value in usage(rt, obj).items():
                    totals[name] = totals.get(name, quantity.ZERO) + value
        return totals

    # -- admission -------------------------------------------------------------------------
    def admit(self, a: Attributes) -> None:
        return None

    def validate(self, a: Attributes) -> None:
        if a.operation != "CREATE" or not a.rt.namespaced or a.obj is None or a.subresource:
            return
        quotas = [(q, scope) for q, scope in self._quotas(a.namespace) if in_scope(scope, a.rt, a.obj)]
        if not quotas:
            return
        requested = usage(a.rt, a.obj)
        for q, scope in sorted(quotas, key=lambda pair: pair[0]["metadata"]["name"]):
            status = q.get("status") or {}
            # What the quota controller last synced: spec.hard is not enforced until then.
            hard = {k: quantity.parse(v) for k, v in (status.get("hard") or {}).items()}
            name = q["metadata"]["name"]
            if a.rt.plural == "pods":
                required = set(hard) & CONSTRAINED
                missing = _missing_constraints(a.obj, required) if required else ""
                if missing:
                    raise forbidden("pods", a.name, f"failed quota: {name}: must specify {missing}")
            unknown = sorted(k for k in hard if counts(a.rt, k) and k not in (status.get("used") or {}))
            if unknown:
                raise forbidden(
                    a.rt.plural, a.name, f"status unknown for quota: {name}, resources: {','.join(unknown)}",
                    a.rt.group,
                )
            used = self.used(a.namespace, scope)
            relevant = {k: v for k, v in requested.items() if k in hard}
            exceeded = [
                k for k, v in relevant.items() if (used.get(k, quantity.ZERO) + v).value > hard[k].value
            ]
            if exceeded:
                raise forbidden(
                    a.rt.plural,
                    a.name,
                    f"exceeded quota: {name}, requested: {_pretty({k: relevant[k] for k in exceeded})}, "
                    f"used: {_pretty({k: used.get(k, quantity.ZERO) for k in exceeded})}, "
                    f"limited: {_pretty({k: hard[k] for k in exceeded})}",
                    a.rt.group,
                )

    # -- quota controller --------------------------------------------------------------------
    def set_stopped(self, stopped: bool) -> None:
        """Stop the controller (syncs are held), or start it again (held syncs run now)."""
        with self.store.lock:
            self.stopped = stopped
            if stopped:
                return
            held, self._held = sorted(self._held), set()
        for namespace in held:
            self._schedule(namespace, delay=0.0)

    def _on_event(self, event: Event) -> None:
        rt = BY_KEY.get(event.key)
        if rt is None or not rt.namespaced:
            return
        namespace = event.obj["metadata"].get("namespace", "")
        if event.key == QUOTAS and event.type != "DELETED":
            if event.type == "MODIFIED" and (event.old or {}).get("spec") == event.obj.get("spec"):
                return  # a status write (ours, or someone's through the status subresource)
            self._schedule(namespace, delay=self.delay)
        self.refresh(namespace)

    def _schedule(self, namespace: str, *, delay: float) -> None:
        if delay > 0:
            self.timers.call_later(delay, self._due, namespace)
        else:
            self._due(namespace)

    def _due(self, namespace: str) -> None:
        with self.store.lock:
            if self.stopped:
                self._held.add(namespace)
            else:
                self.sync(namespace)

    def sync(self, namespace: str) -> None:
        """Copy spec.hard into status.hard of every quota in a namespace, and count its usage."""
        self._write_status(namespace, synced=True)

    def refresh(self, namespace: str) -> None:
        """Recompute status.used of every quota in a namespace, for the resources in status.hard."""
        self._write_status(namespace, synced=False)

    def _write_status(self, namespace: str, *, synced: bool) -> None:
        with self.store.lock:
            for q, scope in self._quotas(namespace):
                current = q.get("status") or {}
                if synced:
                    hard = {k: quantity.canonicalize(v) for k, v in ((q.get("spec") or {}).get("hard") or {}).items()}
                elif "hard" in current:
                    hard = current["hard"]
                else:
                    continue  # never synced: nothing to count yet
                used = self.used(namespace, scope)
                status = {"hard": hard, "used": {k: quantity.canonical(used.get(k, quantity.ZERO)) for k in hard}}
                if current != status:
                    q["status"] = status
                    self.store.update(QUOTAS, q)
