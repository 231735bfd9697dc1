"""The GPU Operator, simulated: the MIG manager and the device plugin's config manager
watching node labels (shared/reference/gpu.md §2, §4).

When a client changes `nvidia.com/mig.config` on a MIG-capable node, the state label
`nvidia.com/mig.config.state` goes `pending` (and the GPU operands are paused, as the real
manager does) before the client's request returns; after `delay` seconds, on the timer
thread, it ends:

- `success`: GFD labels and `nvidia.com/*` capacity/allocatable follow the new geometry;
- `failed`, labels and resources unchanged: unknown config name, a layout the GPU cannot
  hold, or a node marked faulty;
- nothing, for a node told to hang: it stays `pending` until released.

Like the real MIG manager, it does not look at pods (reference gpu.md §2: it neither evicts
nor waits for them; keeping GPU workloads off the node is the caller's job). A MIG change that
succeeds has destroyed every MIG instance and recreated the GPUs: each pod on the node that
requests GPUs (in any container, init containers and sidecars too) and has not ended loses
its devices, and is marked Failed here (reason `MIGReconfigured`, a sandbox stand-in for
workloads whose devices vanished) -- so whatever a client's own checks let through shows.
A device-plugin (time-slicing) change leaves running containers their devices, as the real
plugin restart does.

A node told to lag stands for a manager that has not seen the change yet (the real one
watches from another pod): label changes go unnoticed, the state label keeps the last run's
value, until released.

Setting the label back to the config already applied ends `success` at once (the rollback
path). Nodes without MIG have no MIG manager: the label is ignored there.

`nvidia.com/device-plugin.config` (time-slicing key -> replicas) is handled the same way,
with `nvidia.com/device-plugin.config.state` -- a sandbox addition: the real config manager
reports no state label, so portable clients wait for `nvidia.com/gpu.replicas` and the
allocatable count instead, which change at the same moment here.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from . import nodes
from .cluster import NodeSpec
from .gpu_catalog import ConfigError
from .meta import now
from .store import Event, Store
from .timers import TimerQueue

log = logging.getLogger(__name__)

NODES = ("", "nodes")
PODS = ("", "pods")
PAUSED = "paused-for-mig-change"
PAUSED_OPERANDS = ("device-plugin", "gpu-feature-discovery", "dcgm-exporter", "dcgm", "nvsm")
TERMINAL = ("Succeeded", "Failed")


@dataclass
class _Change:
    """One kind of reconfiguration (MIG or device plugin) of one node."""

    label: str
    state_label: str
    applied: str | None
    seen: str | None
    token: int = 0
    pending: bool = False
    last_error: str = ""


@dataclass
class GpuNode:
    """What the operator knows of one node: its hardware and the two config changes."""

    spec: NodeSpec
    mig: _Change
    plugin: _Change
    faulty: bool = False
    hang: bool = False
    lagging: bool = False


def _requests_gpu(pod: dict[str, Any]) -> bool:
    spec = pod.get("spec") or {}
    for c in (spec.get("containers") or []) + (spec.get("initContainers") or []):
        resources = c.get("resources") or {}
        for section in ("requests", "limits"):
            if any(nodes.is_gpu_resource(k) for k in resources.get(section) or {}):
                return True
    return False


class GpuOperator:
    """Reacts to node label changes; `delay` is the time a reconfiguration takes."""

    def __init__(self, store: Store, timers: TimerQueue, delay: float = 0.0) -> None:
        self.store = store
        self.timers = timers
        self.delay = delay
        self.nodes: dict[str, GpuNode] = {}
        store.subscribe(self._on_event)

    def register(self, spec: NodeSpec) -> None:
        """Track a node whose object is about to be created from this spec."""
        mig_config = spec.mig_config if spec.model and spec.model.mig_capable else None
        self.nodes[spec.name] = GpuNode(
            spec=spec,
            mig=_Change(nodes.MIG_CONFIG, nodes.MIG_STATE, mig_config, mig_config),
            plugin=_Change(
                nodes.DP_CONFIG, nodes.DP_STATE, spec.device_plugin_config, spec.device_plugin_config
            ),
            faulty=spec.faulty,
        )

    # -- test controls -------------------------------------------------------------------
    def set_faulty(self, name: str, faulty: bool = True) -> None:
        """Make every later reconfiguration of this node fail (or not)."""
        self._node(name).faulty = faulty

    def set_hang(self, name: str, hang: bool = True) -> None:
        """Keep reconfigurations of this node pending until released; releasing resumes them."""
        node = self._node(name)
        node.hang = hang
        if not hang:
            for change in (node.mig, node.plugin):
                if change.pending:
                    self.timers.call_later(0, self._finish, name, change, change.token)

    def set_lagging(self, name: str, lagging: bool = True) -> None:
        """Leave label changes of this node unseen (state labels as they were) until released;
        releasing catches up with the labels as they are then."""
        node = self._node(name)
        node.lagging = lagging
        if not lagging:
            self.timers.call_later(0, self._catch_up, name)

    def _catch_up(self, name: str) -> None:
        with self.store.lock:
            obj = self.store.get(NODES, "", name)
            if obj is not None:
                self._on_event(Event(rv=0, key=NODES, type="MODIFIED", obj=obj, old=None))

    def last_error(self, name: str) -> dict[str, str]:
        """Return why the last MIG / device-plugin reconfiguration failed ("" if it did not)."""
        node = self._node(name)
        return {"mig": node.mig.last_error, "device-plugin": node.plugin.last_error}

    def _node(self, name: str) -> GpuNode:
        try:
            return self.nodes[name]
        except KeyError:
            raise KeyError(f"no simulated GPU node {name!r}") from None

    # -- reacting to label changes -------------------------------------------------------
    def _on_event(self, event: Event) -> None:
        if event.key != NODES:
            return
        name = event.obj["metadata"]["name"]
        node = self.nodes.get(name)
        if node is None or node.spec.model is None:
            return
        if event.type == "DELETED":
            self.nodes.pop(name, None)
            return
        if node.lagging:
            return
        labels = event.obj["metadata"].get("labels") or {}
        if node.spec.model.mig_capable:
            wanted = labels.get(nodes.MIG_CONFIG)
            if wanted is not None and wanted != node.mig.seen:
                node.mig.seen = wanted
                self._begin(name, node, node.mig)
        wanted_plugin = labels.get(nodes.DP_CONFIG)
        if wanted_plugin != node.plugin.seen:
            node.plugin.seen = wanted_plugin
            self._begin(name, node, node.plugin)

    def _begin(self, name: str, node: GpuNode, change: _Change) -> None:
        change.token += 1
        obj = self.store.get(NODES, "", name)
        if obj is None:
            return
        labels = obj["metadata"].setdefault("labels", {})
        if change.seen == change.applied and not node.faulty:
            # Already applied (e.g. a rollback after a failure): success at once.
            change.pending = False
            change.last_error = ""
            self._set_state(labels, change, "success")
            self.store.update(NODES, obj)
            return
        change.pending = True
        self._set_state(labels, change, "pending")
        if change is node.mig:
            for operand in PAUSED_OPERANDS:
                key = f"nvidia.com/gpu.deploy.{operand}"
                if labels.get(key) == "true":
                    labels[key] = PAUSED
        self.store.update(NODES, obj)
        log.info("kube.sandbox.gpu.reconfigure.pending", extra={"node": name, "config": change.seen})
        self.timers.call_later(self.delay, self._finish, name, change, change.token)

    @staticmethod
    def _set_state(labels: dict[str, str], change: _Change, state: str) -> None:
        if change.state_label == nodes.DP_STATE and change.seen is None and state == "success":
            labels.pop(nodes.DP_STATE, None)  # back on the default config: nothing to report
            return
        labels[change.state_label] = state

    def _blocker(self, name: str, node: GpuNode) -> str:
        return "the node is faulty" if node.faulty else ""

    def _destroy_devices(self, name: str, config: str | None) -> None:
        """Fail every GPU pod still running on the node: its MIG devices are gone."""
        for pod in self.store.list(PODS):
            status = pod.get("status") or {}
            if (
                (pod.get("spec") or {}).get("nodeName") != name
                or status.get("phase") in TERMINAL
                or not _requests_gpu(pod)
            ):
                continue
            message = (
                f"the MIG manager applied {config} on node {name}: every MIG device was destroyed and "
                "recreated, this pod's among them"
            )
            status.update({"phase": "Failed", "reason": "MIGReconfigured", "message": message})
            for key in ("initContainerStatuses", "containerStatuses"):
                for container in status.get(key) or []:
                    started = ((container.get("state") or {}).get("running") or {}).get("startedAt")
                    container["ready"] = False
                    container["started"] = False
                    container["state"] = {
                        "terminated": {
                            "exitCode": 1,
                            "reason": "Error",
                            "message": message,
                            "startedAt": started,
                            "finishedAt": now(),
                        }
                    }
            for condition in status.get("conditions") or []:
                if condition.get("type") in ("Ready", "ContainersReady"):
                    condition.update({"status": "False", "reason": "PodFailed", "lastTransitionTime": now()})
            pod.setdefault("status", status)
            self.store.update(PODS, pod)
            m = pod["metadata"]
            log.warning(
                "kube.sandbox.gpu.reconfigure.pod_failed",
                extra={"node": name, "pod": f"{m.get('namespace')}/{m.get('name')}"},
            )

    def _finish(self, name: str, change: _Change, token: int) -> None:
        with self.store.lock:
            node = self.nodes.get(name)
            if node is None or token != change.token or not change.pending or node.hang:
                return
            obj = self.store.get(NODES, "", name)
            if obj is None:
                return
            labels = obj["metadata"].setdefault("labels", {})
            reason = self._blocker(name, node)
            rewritten = False
            if not reason:
                mig = node.mig.seen if change is node.mig else node.mig.applied
                plugin = node.plugin.seen if change is node.plugin else node.plugin.applied
                try:
                    gfd, resources = nodes.gpu_state(node.spec, mig, plugin)
                except ConfigError as exc:
                    reason = str(exc)
            change.pending = False
            change.last_error = reason
            if reason:
                self._set_state(labels, change, "failed")
                log.warning("kube.sandbox.gpu.reconfigure.failed", extra={"node": name, "reason": reason})
            else:
                rewritten = change is node.mig and change.applied != change.seen
                change.applied = change.seen
                nodes.set_gpu_state(obj, gfd, resources)
                self._set_state(labels, change, "success")
            if change is node.mig:
                for operand in PAUSED_OPERANDS:
                    key = f"nvidia.com/gpu.deploy.{operand}"
                    if labels.get(key) == PAUSED:
                        labels[key] = "true"
            self.store.update(NODES, obj)
            if rewritten:
                self._destroy_devices(name, change.seen)
