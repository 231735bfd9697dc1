"""Namespace lifecycle, as the namespace controller and the NamespaceLifecycle admission
plugin run it:

- a new namespace gets its `default` ServiceAccount and `kube-root-ca.crt` ConfigMap;
- DELETE marks it Terminating (deletionTimestamp, phase, conditions) and returns 200;
  `default`, `kube-system` and `kube-public` may not be deleted;
- after `delay` seconds, on the timer thread, its content is deleted (objects that carry
  finalizers are marked and waited for), then the `kubernetes` spec finalizer is removed
  and the namespace itself goes once no metadata finalizers remain.
"""

from __future__ import annotations

from typing import Any

from .errors import conflict, forbidden
from .meta import new_uid, now
from .resources import BY_KEY
from .store import Event, Store
from .timers import TimerQueue

NS = ("", "namespaces")
PROTECTED = frozenset({"default", "kube-system", "kube-public"})
ROOT_CA = "-----BEGIN CERTIFICATE-----\nsandbox\n-----END CERTIFICATE-----\n"


class NamespaceController:
    """Creates per-namespace defaults and finalises deleted namespaces."""

    def __init__(self, store: Store, timers: TimerQueue, delay: float = 0.2) -> None:
        self.store = store
        self.timers = timers
        self.delay = delay
        store.subscribe(self._on_event)

    def _on_event(self, event: Event) -> None:
        if event.key != NS or event.type != "ADDED":
            return
        name = event.obj["metadata"]["name"]
        stamp = now()
        if self.store.get(("", "serviceaccounts"), name, "default") is None:
            self.store.create(
                ("", "serviceaccounts"),
                {
                    "apiVersion": "v1",
                    "kind": "ServiceAccount",
                    "metadata": {
                        "name": "default",
                        "namespace": name,
                        "uid": new_uid(),
                        "creationTimestamp": stamp,
                    },
                },
            )
        if self.store.get(("", "configmaps"), name, "kube-root-ca.crt") is None:
            self.store.create(
                ("", "configmaps"),
                {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {
                        "name": "kube-root-ca.crt",
                        "namespace": name,
                        "uid": new_uid(),
                        "creationTimestamp": stamp,
                        "annotations": {
                            "kubernetes.io/description": "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters."
                        },
                    },
                    "data": {"ca.crt": ROOT_CA},
                },
            )

    def begin_delete(self, ns: dict[str, Any], *, dry_run: bool) -> dict[str, Any]:
        """Mark a namespace Terminating and schedule its finalisation."""
        name = ns["metadata"]["name"]
        if name in PROTECTED:
            raise forbidden("namespaces", name, "this namespace may not be deleted")
        if ns["metadata"].get("deletionTimestamp"):
            raise conflict(
                "namespaces",
                name,
                "",
                "The system is ensuring all content is removed from this namespace.  Upon completion, "
                "this namespace will automatically be purged by the system.",
            )
        ns["metadata"]["deletionTimestamp"] = now()
        ns["metadata"]["deletionGracePeriodSeconds"] = 0
        ns["status"] = {"phase": "Terminating"}
        if dry_run:
            return ns
        stored = self.store.update(NS, ns)
        self.timers.call_later(self.delay, self.finalize, name)
        return stored

    def finalize(self, name: str) -> None:
        """Delete the namespace's content, then the namespace (reschedules while blocked)."""
        with self.store.lock:
            ns = self.store.get(NS, "", name)
            if ns is None or not ns["metadata"].get("deletionTimestamp"):
                return
            remaining = 0
            # Pods first, so their GPUs are free before anything else goes.
            keys = sorted(self.store.namespaced_keys(), key=lambda k: k != ("", "pods"))
            for key in keys:
                rt = BY_KEY.get(key)
                if rt is None or not rt.namespaced:
                    continue
                for obj in self.store.list(key, name):
                    if obj["metadata"].get("finalizers"):
                        remaining += 1
                        if not obj["metadata"].get("deletionTimestamp"):
                            obj["metadata"]["deletionTimestamp"] = now()
                            self.store.update(key, obj)
                    else:
                        self.store.delete(key, name, obj["metadata"]["name"])
            ns["status"]["conditions"] = _conditions(remaining)
            if remaining:
                self.store.update(NS, ns)
                self.timers.call_later(max(self.delay, 0.05), self.finalize, name)
                return
            ns.setdefault("spec", {})["finalizers"] = [
                f for f in ns.get("spec", {}).get("finalizers") or [] if f != "kubernetes"
            ]
            if ns["spec"]["finalizers"] or ns["metadata"].get("finalizers"):
                self.store.update(NS, ns)  # other finalizers: their owners remove them
                return
            self.store.delete(NS, "", name)


def _conditions(remaining: int) -> list[dict[str, str]]:
    stamp = now()
    content = "True" if remaining else "False"
    return [
        {
            "type": "NamespaceDeletionDiscoveryFailure",
            "status": "False",
            "reason": "ResourcesDiscovered",
            "message": "All resources successfully discovered",
            "lastTransitionTime": stamp,
        },
        {
            "type": "NamespaceDeletionContentFailure",
            "status": "False",
            "reason": "ContentDeleted",
            "message": "All content successfully deleted, may be waiting on finalization",
            "lastTransitionTime": stamp,
        },
        {
            "type": "NamespaceContentRemaining",
            "status": content,
            "reason": "SomeResourcesRemain" if remaining else "ContentRemoved",
            "message": f"Some resources are remaining: {remaining} objects with finalizers"
            if remaining
            else "All content successfully removed",
            "lastTransitionTime": stamp,
        },
    ]
