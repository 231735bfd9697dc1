"""The scheduler and kubelets, simulated: a new pod is bound to a node (spec.nodeName,
phase Running, ready) or left Pending with `PodScheduled=False, reason Unschedulable` and
the real scheduler's summary ("0/7 nodes are available: 3 Insufficient nvidia.com/gpu, ...").

A node fits when it is Ready and schedulable (not cordoned), matches the pod's nodeSelector
and required node affinity, carries no NoSchedule/NoExecute taint the pod does not
tolerate, and has enough allocatable left for the pod's requests (cpu, memory, pods,
`nvidia.com/*` and any other resource) after the pods already bound to it. Of the nodes that
fit, one without a PreferNoSchedule taint the pod does not tolerate is taken first (the real
scheduler's TaintToleration score), then the first in name order. Pending pods are retried, oldest first, whenever a pod goes away or ends, or
a node changes. Pods never finish on their own.

A pod created with spec.nodeName skips the scheduler but not the node's kubelet, which admits
it as the real one does (lifecycle.predicateAdmitHandler): cordons and NoSchedule taints are
not its business, but a pod that does not fit the node's allocatable (after the pods running
there), whose nodeSelector or required node affinity the node does not match, or that does
not tolerate a NoExecute taint of the node is rejected: phase Failed, reason `OutOf<resource>`
(e.g. `OutOfnvidia.com/gpu`), `NodeAffinity` or `TaintToleration`, message "Pod was rejected:
...". Extended resources the node does not have at all are left out of the check, as there.

Also keeps the `node.kubernetes.io/unschedulable` taint in step with spec.unschedulable,
as the node lifecycle controller does.
"""

from __future__ import annotations

import math
from typing import Any

from . import quantity
from .meta import now
from .nodes import UNSCHEDULABLE_TAINT, sync_unschedulable_taint
from .quantity import Quantity
from .store import Event, Store

NODES = ("", "nodes")
PODS = ("", "pods")
TERMINAL = ("Succeeded", "Failed")


def _requests_of(container: dict[str, Any], kind: str = "requests") -> dict[str, Quantity]:
    return {
        name: quantity.parse(value)
        for name, value in ((container.get("resources") or {}).get(kind) or {}).items()
    }


def _add(into: dict[str, Quantity], more: dict[str, Quantity]) -> None:
    for name, value in more.items():
        into[name] = into.get(name, quantity.ZERO) + value


def _max(into: dict[str, Quantity], other: dict[str, Quantity]) -> None:
    for name, value in other.items():
        if name not in into or value.value > into[name].value:
            into[name] = value


def pod_limits(pod: dict[str, Any]) -> dict[str, Quantity]:
    """Effective limits, as component-helpers' PodLimits works them out: the same sums and
    maxima as `pod_requests`, over limits (spec.overhead added to the limits a pod sets)."""
    return pod_requests(pod, kind="limits")


def pod_requests(pod: dict[str, Any], *, kind: str = "requests") -> dict[str, Quantity]:
    """Effective requests, as component-helpers' PodRequests works them out (KEP-753).

    Sidecars (init containers with `restartPolicy: Always`) run beside the app containers for
    the pod's whole life: they add to the app containers' sum. An ordinary init container runs
    alone, beside only the sidecars started before it. The pod needs the larger of the two
    for each resource: max(sum(app) + sum(sidecars), max over init container i of (its
    requests + the sidecars before i, or, for a sidecar, all sidecars up to it)); plus
    spec.overhead.
    """
    spec = pod.get("spec") or {}
    total: dict[str, Quantity] = {}
    for c in spec.get("containers") or []:
        _add(total, _requests_of(c, kind))
    sidecars: dict[str, Quantity] = {}
    init_peak: dict[str, Quantity] = {}
    for c in spec.get("initContainers") or []:
        own = _requests_of(c, kind)
        if c.get("restartPolicy") == "Always":
            _add(total, own)
            _add(sidecars, own)
            running = dict(sidecars)
        else:
            running = dict(own)
            _add(running, sidecars)
        _max(init_peak, running)
    _max(total, init_peak)
    for name, value in (spec.get("overhead") or {}).items():
        if kind == "requests" or name in total:
            total[name] = total.get(name, quantity.ZERO) + quantity.parse(value)
    return total


def _is_extended(name: str) -> bool:
    """An extended resource: a domain-prefixed name outside kubernetes.io (nvidia.com/gpu)."""
    domain, slash, _ = name.partition("/")
    return bool(slash) and not (domain == "kubernetes.io" or domain.endswith(".kubernetes.io"))


def _not_enough(name: str, requested: int, used: int, capacity: int) -> str:
    return (
        f"Node didn't have enough resource: {name}, requested: {requested}, used: {used}, "
        f"capacity: {capacity}"
    )


def is_active(pod: dict[str, Any]) -> bool:
    """True while a pod holds resources (not Succeeded/Failed)."""
    return (pod.get("status") or {}).get("phase") not in TERMINAL


def tolerates(toleration: dict[str, Any], taint: dict[str, Any]) -> bool:
    """Return True when the toleration matches the taint (core/v1 ToleratesTaint)."""
    effect = toleration.get("effect") or ""
    if effect and effect != taint.get("effect"):
        return False
    key = toleration.get("key") or ""
    operator = toleration.get("operator") or "Equal"
    if not key:
        return operator == "Exists"
    if key != taint.get("key"):
        return False
    return operator == "Exists" or (toleration.get("value") or "") == (taint.get("value") or "")


def _expression_matches(expr: dict[str, Any], value: str | None) -> bool:
    op, values = expr.get("operator"), expr.get("values") or []
    if op == "In":
        return value is not None and value in values
    if op == "NotIn":
        return value is None or value not in values
    if op == "Exists":
        return value is not None
    if op == "DoesNotExist":
        return value is None
    if op in ("Gt", "Lt") and value is not None and values:
        try:
            number, bound = int(value), int(values[0])
        except ValueError:
            return False
        return number > bound if op == "Gt" else number < bound
    return False


def matches_node(pod: dict[str, Any], node: dict[str, Any]) -> bool:
    """nodeSelector and requiredDuringScheduling node affinity."""
    labels = node["metadata"].get("labels") or {}
    spec = pod.get("spec") or {}
    for key, value in (spec.get("nodeSelector") or {}).items():
        if labels.get(key) != value:
            return False
    required = (
        ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
            "requiredDuringSchedulingIgnoredDuringExecution"
        )
        or {}
    ).get("nodeSelectorTerms")
    if not required:
        return True
    fields = {"metadata.name": node["metadata"]["name"]}
    for term in required:
        exprs = term.get("matchExpressions") or []
        field_exprs = term.get("matchFields") or []
        if not exprs and not field_exprs:
            continue
        if all(_expression_matches(e, labels.get(e.get("key"))) for e in exprs) and all(
            _expression_matches(e, fields.get(e.get("key"))) for e in field_exprs
        ):
            return True
    return False


def _avoided(node: dict[str, Any], tolerations: list[dict[str, Any]]) -> int:
    """Count the node's PreferNoSchedule taints the pod does not tolerate."""
    return sum(
        1
        for taint in (node.get("spec") or {}).get("taints") or []
        if taint.get("effect") == "PreferNoSchedule" and not any(tolerates(t, taint) for t in tolerations)
    )


class Scheduler:
    """Binds pods as they are created and whenever capacity may have appeared."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._retrying = False
        store.subscribe(self._on_event)

    def _on_event(self, event: Event) -> None:
        if event.key == NODES and event.type != "DELETED":
            obj = self.store.get(NODES, "", event.obj["metadata"]["name"])
            if obj is not None and sync_unschedulable_taint(obj):
                self.store.update(NODES, obj)
                return  # the taint update triggers the retry
            self.retry_pending()
        elif event.key == PODS:
            pod = event.obj
            if event.type == "ADDED":
                if (pod.get("spec") or {}).get("nodeName"):
                    self._kubelet_admit(pod, pod["spec"]["nodeName"])
                else:
                    self.schedule(pod)
            elif event.type == "DELETED" or (
                event.old is not None and is_active(event.old) and not is_active(pod)
            ):
                self.retry_pending()

    def retry_pending(self) -> None:
        """Try every unbound, active pod again, oldest first."""
        if self._retrying:  # bindings below fire events; one pass at a time
            return
        self._retrying = True
        try:
            pending = [
                p
                for p in self.store.list(PODS)
                if not (p.get("spec") or {}).get("nodeName")
                and is_active(p)
                and not p["metadata"].get("deletionTimestamp")
            ]
            for pod in sorted(pending, key=lambda p: int(p["metadata"]["resourceVersion"])):
                self.schedule(pod)
        finally:
            self._retrying = False

    def schedule(self, pod: dict[str, Any]) -> str | None:
        """Bind the pod to the best node that fits (see the module docstring); returns the node
        name or None."""
        all_nodes = self.store.list(NODES)
        reasons: dict[str, int] = {}
        wanted = pod_requests(pod)
        fitting = []
        for node in all_nodes:
            problems = self._problems(pod, node, wanted)
            if not problems:
                fitting.append(node)
            for problem in problems:
                reasons[problem] = reasons.get(problem, 0) + 1
        if fitting:
            tolerations = (pod.get("spec") or {}).get("tolerations") or []
            best = min(fitting, key=lambda node: _avoided(node, tolerations))  # stable: name order
            self._run(pod, best["metadata"]["name"])
            return best["metadata"]["name"]
        self._unschedulable(pod, len(all_nodes), reasons)
        return None

    def _problems(self, pod: dict[str, Any], node: dict[str, Any], wanted: dict[str, Quantity]) -> list[str]:
        tolerations = (pod.get("spec") or {}).get("tolerations") or []
        unschedulable_taint = {"key": UNSCHEDULABLE_TAINT, "effect": "NoSchedule"}
        if (node.get("spec") or {}).get("unschedulable") and not any(
            tolerates(t, unschedulable_taint) for t in tolerations
        ):
            return ["node(s) were unschedulable"]
        ready = next(
            (c for c in (node.get("status") or {}).get("conditions") or [] if c.get("type") == "Ready"), {}
        )
        if ready.get("status") != "True":
            return ["node(s) had untolerated taint {node.kubernetes.io/not-ready: }"]
        for taint in (node.get("spec") or {}).get("taints") or []:
            if taint.get("effect") in ("NoSchedule", "NoExecute") and not any(
                tolerates(t, taint) for t in tolerations
            ):
                return [f"node(s) had untolerated taint {{{taint.get('key')}: {taint.get('value', '')}}}"]
        if not matches_node(pod, node):
            return ["node(s) didn't match Pod's node affinity/selector"]
        return self._insufficient(node, wanted)

    def _insufficient(self, node: dict[str, Any], wanted: dict[str, Quantity]) -> list[str]:
        allocatable = (node.get("status") or {}).get("allocatable") or {}
        used: dict[str, Quantity] = {}
        count = 0
        for pod in self.store.list(PODS):
            if (pod.get("spec") or {}).get("nodeName") == node["metadata"]["name"] and is_active(pod):
                count += 1
                for name, value in pod_requests(pod).items():
                    used[name] = used.get(name, quantity.ZERO) + value
        problems = []
        if count + 1 > int(allocatable.get("pods", "110")):
            problems.append("Too many pods")
        for name, value in sorted(wanted.items()):
            if value.value <= 0:
                continue
            free = quantity.parse(allocatable.get(name, "0")).value - used.get(name, quantity.ZERO).value
            if value.value > free:
                problems.append(f"Insufficient {name}")
        return problems

    def _kubelet_admit(self, pod: dict[str, Any], node_name: str) -> None:
        """Run a pod bound by its creator, unless the node's kubelet would reject it."""
        node = self.store.get(NODES, "", node_name)
        rejection = self._kubelet_rejection(pod, node) if node is not None else None
        if rejection is None:
            self._run(pod, node_name)
            return
        current = self.store.get(PODS, pod["metadata"]["namespace"], pod["metadata"]["name"])
        if current is None:
            return
        reason, message = rejection
        status = current.setdefault("status", {})
        status.update({"phase": "Failed", "reason": reason, "message": f"Pod was rejected: {message}"})
        self.store.update(PODS, current)

    def _kubelet_rejection(self, pod: dict[str, Any], node: dict[str, Any]) -> tuple[str, str] | None:
        """Return (reason, message) when the kubelet's admission refuses the pod, as
        generalFilter does: resources first, then node affinity, then NoExecute taints."""
        allocatable = (node.get("status") or {}).get("allocatable") or {}
        me = (pod["metadata"].get("namespace"), pod["metadata"].get("name"))
        used: dict[str, Quantity] = {}
        count = 0
        for other in self.store.list(PODS):
            if (
                (other.get("spec") or {}).get("nodeName") == node["metadata"]["name"]
                and is_active(other)
                and (other["metadata"].get("namespace"), other["metadata"].get("name")) != me
            ):
                count += 1
                _add(used, pod_requests(other))
        allowed = int(allocatable.get("pods", "110"))
        if count + 1 > allowed:
            return "OutOfpods", _not_enough("pods", 1, count, allowed)
        wanted = pod_requests(pod)
        for name in sorted(wanted, key=lambda n: (n not in ("cpu", "memory", "ephemeral-storage"), n)):
            value = wanted[name]
            if value.value <= 0:
                continue
            if _is_extended(name) and name not in allocatable:
                continue  # removeMissingExtendedResources
            capacity = quantity.parse(allocatable.get(name, "0"))
            taken = used.get(name, quantity.ZERO)
            if value.value > capacity.value - taken.value:
                scale = 1000 if name == "cpu" else 1  # the kubelet reports cpu in millicores
                return f"OutOf{name}", _not_enough(
                    name, *(math.ceil(q.value * scale) for q in (value, taken, capacity))
                )
        if not matches_node(pod, node):
            return (
                "NodeAffinity",
                "Predicate NodeAffinity failed: node(s) didn't match Pod's node affinity/selector",
            )
        tolerations = (pod.get("spec") or {}).get("tolerations") or []
        for taint in (node.get("spec") or {}).get("taints") or []:
            if taint.get("effect") == "NoExecute" and not any(tolerates(t, taint) for t in tolerations):
                return (
                    "TaintToleration",
                    "Predicate TaintToleration failed: node(s) had taints that the pod didn't tolerate",
                )
        return None

    def _run(self, pod: dict[str, Any], node_name: str) -> None:
        current = self.store.get(PODS, pod["metadata"]["namespace"], pod["metadata"]["name"])
        if current is None:
            return
        node = self.store.get(NODES, "", node_name) or {}
        host_ip = next(
            (
                a["address"]
                for a in (node.get("status") or {}).get("addresses") or []
                if a.get("type") == "InternalIP"
            ),
            "10.0.0.1",
        )
        stamp = now()
        current["spec"]["nodeName"] = node_name
        pod_ip = f"10.244.{(int(current['metadata']['resourceVersion']) // 250) % 250}.{int(current['metadata']['resourceVersion']) % 250 + 2}"
        status = current.setdefault("status", {})
        status.update(
            {
                "phase": "Running",
                "conditions": [
                    {"type": t, "status": "True", "lastProbeTime": None, "lastTransitionTime": stamp}
                    for t in (
                        "PodReadyToStartContainers",
                        "Initialized",
                        "Ready",
                        "ContainersReady",
                        "PodScheduled",
                    )
                ],
                "hostIP": host_ip,
                "hostIPs": [{"ip": host_ip}],
                "podIP": pod_ip,
                "podIPs": [{"ip": pod_ip}],
                "startTime": stamp,
                "containerStatuses": [
                    {
                        "name": c.get("name"),
                        "image": c.get("image"),
                        "imageID": f"docker.io/library/{c.get('image')}@sha256:{'0' * 64}",
                        "containerID": f"containerd://{index:064x}",
                        "ready": True,
                        "started": True,
                        "restartCount": 0,
                        "state": {"running": {"startedAt": stamp}},
                    }
                    for index, c in enumerate(current["spec"].get("containers") or [])
                ],
            }
        )
        self.store.update(PODS, current)

    def _unschedulable(self, pod: dict[str, Any], total: int, reasons: dict[str, int]) -> None:
        current = self.store.get(PODS, pod["metadata"]["namespace"], pod["metadata"]["name"])
        if current is None:
            return
        histogram = sorted(f"{count} {reason}" for reason, count in reasons.items())
        message = f"0/{total} nodes are available"
        if histogram:
            message += ": " + ", ".join(histogram)
        message += (
            f". preemption: 0/{total} nodes are available: {total} Preemption is not helpful for scheduling."
        )
        status = current.setdefault("status", {})
        conditions = [c for c in status.get("conditions") or [] if c.get("type") != "PodScheduled"]
        old = next((c for c in status.get("conditions") or [] if c.get("type") == "PodScheduled"), None)
        if old is not None and old.get("message") == message:
            return  # nothing new to report; avoid a write per retry
        conditions.append(
            {
                "type": "PodScheduled",
                "status": "False",
                "reason": "Unschedulable",
                "message": message,
                "lastProbeTime": None,
                "lastTransitionTime": now(),
            }
        )
        status["conditions"] = conditions
        status["phase"] = "Pending"
        self.store.update(PODS, current)
