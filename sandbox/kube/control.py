"""`KubeSandbox`: the stand-in API server as a Python object, for tests and for the
embedded default.

    with KubeSandbox(cluster_file=None, port=0, operator_delay=0.0) as kube:
        configuration = kubernetes.client.Configuration(host=kube.url)
        ...
        kube.add_fault(kind="status", status=503, method="GET", path="/api/v1/nodes", nth=1)
        kube.requests(method="PATCH")
        kube.quota_delay = 2.0            # the quota controller syncs status.hard 2 s late
        kube.set_quota_stopped(True)      # ... or not at all, until started again

Every test-facing control is a method here; the admin endpoints under /_sandbox call the
same methods (admin.py).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from . import cluster, nodes
from .access import Access, DenyRule
from .admin import make_admin
from .admission import (
    Chain,
    DefaultTolerationSeconds,
    LimitRanger,
    PodNodeSelector,
    PodTolerationRestriction,
)
from .cluster import NodeSpec
from .errors import ApiError
from .faults import FaultRule, Faults
from .gpu_operator import GpuOperator
from .incoming import Target
from .mutating_policy import MutatingPolicies
from .namespaces import NamespaceController
from .pod_security import PodSecurity
from .quota import QuotaController
from .requestlog import RecordedRequest, RequestLog
from .resources import BY_KEY
from .rest import Api
from .scheduler import Scheduler
from .server import ApiServer
from .store import Store
from .timers import TimerQueue
from .transport import HttpServer

SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
CLUSTER_ROLES = {
    "cluster-admin": [
        {"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
        {"nonResourceURLs": ["*"], "verbs": ["*"]},
    ],
    "admin": [
        {
            "apiGroups": ["", "apps", "batch", "rbac.authorization.k8s.io", "networking.k8s.io"],
            "resources": ["*"],
            "verbs": ["*"],
        }
    ],
    "edit": [
        {
            "apiGroups": ["", "apps", "batch", "networking.k8s.io"],
            "resources": ["*"],
            "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"],
        }
    ],
    "view": [
        {
            "apiGroups": ["", "apps", "batch", "networking.k8s.io"],
            "resources": ["*"],
            "verbs": ["get", "list", "watch"],
        }
    ],
}


class KubeSandbox:
    """A Kubernetes API stand-in with simulated GPU nodes, served on 127.0.0.1."""

    def __init__(
        self,
        cluster_file: str | Path | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        operator_delay: float = 0.0,
        namespace_delay: float = 0.05,
        quota_delay: float = 0.0,
        bookmark_interval: float = 1.0,
        history_limit: int = 10_000,
    ) -> None:
        # Read the cluster first: a bad file must fail before any thread or socket exists.
        self.cluster = cluster.load(cluster_file)
        self.store = Store(history_limit=history_limit)
        self.timers = TimerQueue()
        self.access = Access()
        self.faults = Faults()
        self.request_log = RequestLog()
        self.namespace_controller = NamespaceController(self.store, self.timers, namespace_delay)
        self.operator = GpuOperator(self.store, self.timers, operator_delay)
        self.scheduler = Scheduler(self.store)
        self.quota = QuotaController(self.store, self.timers, quota_delay)
        self.chain = Chain(
            [
                LimitRanger(self.store),
                PodSecurity(self.store),
                PodNodeSelector(self.store),
                DefaultTolerationSeconds(),
                PodTolerationRestriction(self.store),
                MutatingPolicies(self.store),
                self.quota,
            ]
        )
        self.api = Api(
            self.store,
            chain=self.chain,
            access=self.access,
            namespaces=self.namespace_controller,
            bookmark_interval=bookmark_interval,
        )
        self.server = ApiServer(
            self.api, faults=self.faults, requests=self.request_log, admin=make_admin(self)
        )
        self._http = HttpServer(self.server, host, port)
        self.host = host
        self.server.address = f"{host}:{self._http.port}"
        self._seed()
        for spec in self.cluster.nodes:
            self.add_node(spec)

    # -- lifecycle -----------------------------------------------------------------------
    @property
    def port(self) -> int:
        return self._http.port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> KubeSandbox:
        """Serve in a background thread; returns self."""
        self._http.start()
        return self

    def serve_forever(self) -> None:
        """Serve in the calling thread (the CLI)."""
        self._http.serve_forever()

    def stop(self) -> None:
        """Stop serving; open watches end."""
        self.store.close()
        self.timers.stop()
        self._http.stop()

    def __enter__(self) -> KubeSandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- seeding -------------------------------------------------------------------------
    def create(
        self, plural: str, obj: dict[str, Any], *, group: str = "", manager: str = "sandbox"
    ) -> dict[str, Any]:
        """Create an object through the API's own create path (defaults, admission)."""
        rt = BY_KEY[(group, plural)]
        obj = copy.deepcopy(obj)
        obj.setdefault("apiVersion", rt.api_version())
        obj.setdefault("kind", rt.kind)
        namespace = obj.get("metadata", {}).get("namespace", "") if rt.namespaced else ""
        target = Target(rt, rt.versions[0], namespace, obj["metadata"].get("name", ""), "")
        return self.api.create_object(target, obj, manager=manager)

    def _seed(self) -> None:
        for name in SYSTEM_NAMESPACES:
            self.create("namespaces", {"metadata": {"name": name}})
        for name, rules in CLUSTER_ROLES.items():
            labels = {"kubernetes.io/bootstrapping": "rbac-defaults"}
            self.create(
                "clusterroles",
                {"metadata": {"name": name, "labels": labels}, "rules": rules},
                group="rbac.authorization.k8s.io",
            )

    # -- nodes and the GPU Operator --------------------------------------------------------
    @property
    def operator_delay(self) -> float:
        """Seconds a simulated MIG / time-slicing reconfiguration takes."""
        return self.operator.delay

    @operator_delay.setter
    def operator_delay(self, seconds: float) -> None:
        self.operator.delay = seconds

    def add_node(self, spec: NodeSpec | dict[str, Any]) -> list[dict[str, Any]]:
        """Register node(s) from a NodeSpec or one cluster-file node entry."""
        specs = [spec] if isinstance(spec, NodeSpec) else cluster.parse_node(spec)
        created = []
        for one in specs:
            self.operator.register(one)
            index = len(self.store.list(("", "nodes")))
            created.append(self.create("nodes", nodes.node_object(one, index), manager="kubelet"))
        return created

    def set_faulty(self, node: str, faulty: bool = True) -> None:
        """Make every later reconfiguration of the node fail (failed state)."""
        self.operator.set_faulty(node, faulty)

    def set_hang(self, node: str, hang: bool = True) -> None:
        """Keep the node's reconfigurations pending until hang is cleared."""
        with self.store.lock:
            self.operator.set_hang(node, hang)

    def set_lagging(self, node: str, lagging: bool = True) -> None:
        """Leave the node's label changes unseen by the GPU Operator until lagging is cleared."""
        with self.store.lock:
            self.operator.set_lagging(node, lagging)

    def reconfigure_error(self, node: str) -> dict[str, str]:
        """Why the node's last MIG / device-plugin reconfiguration failed ("" if it did not)."""
        return self.operator.last_error(node)

    # -- the quota controller (kube-controller-manager's) ------------------------------------
    @property
    def quota_delay(self) -> float:
        """Seconds after a quota's create or spec change before its status.hard is synced."""
        return self.quota.delay

    @quota_delay.setter
    def quota_delay(self, seconds: float) -> None:
        self.quota.delay = seconds

    def set_quota_stopped(self, stopped: bool = True) -> None:
        """Stop the quota controller: new and changed quotas keep their old status.hard (a new
        one limits nothing) until it is started again, when it syncs what it missed."""
        self.quota.set_stopped(stopped)

    def set_pod_phase(self, namespace: str, name: str, phase: str) -> dict[str, Any]:
        """End (or restart) a pod as its kubelet would report it; ending frees its GPUs."""
        with self.store.lock:
            pod = self.store.get(("", "pods"), namespace, name)
            if pod is None:
                raise KeyError(f"no pod {namespace}/{name}")
            pod.setdefault("status", {})["phase"] = phase
            if phase in ("Succeeded", "Failed"):
                for status in pod["status"].get("containerStatuses") or []:
                    status["ready"] = False
                    status["state"] = {
                        "terminated": {
                            "exitCode": 0 if phase == "Succeeded" else 1,
                            "reason": "Completed" if phase == "Succeeded" else "Error",
                        }
                    }
            return self.store.update(("", "pods"), pod)

    def idle(self) -> bool:
        """True when no simulated controller has work scheduled (namespaces, operator, quotas)."""
        return self.timers.idle()

    # -- reading objects (test convenience) -----------------------------------------------
    def get(self, plural: str, name: str, *, namespace: str = "", group: str = "") -> dict[str, Any] | None:
        """Return a stored object (or None), bypassing HTTP."""
        return self.store.get((group, plural), namespace, name)

    def list(self, plural: str, *, namespace: str | None = None, group: str = "") -> list[dict[str, Any]]:
        return self.store.list((group, plural), namespace)

    # -- faults and request log -----------------------------------------------------------
    def add_fault(self, kind: str, **options: Any) -> FaultRule:
        """Add a fault rule (see faults.FaultRule) and return it."""
        return self.faults.add(FaultRule(kind=kind, **options))

    def remove_fault(self, rule_id: str) -> bool:
        return self.faults.remove(rule_id)

    def clear_faults(self) -> None:
        self.faults.clear()

    def requests(
        self, method: str | None = None, path: str | None = None, *, path_prefix: str | None = None
    ) -> list[RecordedRequest]:
        """Return the recorded API requests, oldest first."""
        return self.request_log.entries(method=method, path=path, path_prefix=path_prefix)

    def clear_requests(self) -> None:
        self.request_log.clear()

    # -- admission ------------------------------------------------------------------------
    def disable_admission(self, plugin: str) -> None:
        """Turn an admission plugin off by name (e.g. "PodNodeSelector"), as a cluster started
        without it in --enable-admission-plugins would be."""
        kept = [p for p in self.chain.plugins if type(p).__name__ != plugin]
        if len(kept) == len(self.chain.plugins):
            known = ", ".join(type(p).__name__ for p in self.chain.plugins)
            raise ValueError(f"no admission plugin {plugin!r} is enabled; enabled: {known}")
        self.chain.plugins = kept

    # -- access ---------------------------------------------------------------------------
    def deny(
        self,
        verb: str,
        resource: str,
        *,
        group: str = "*",
        namespace: str = "*",
        subresource: str = "",
        enforce: bool = True,
    ) -> None:
        """Deny verb on resource in SelfSubjectAccessReviews (and on requests if enforce)."""
        self.access.deny(DenyRule(verb, resource, group, namespace, subresource, enforce))

    def clear_denials(self) -> None:
        self.access.clear()

    # -- watch history --------------------------------------------------------------------
    def compact(self) -> int:
        """Drop the watch history so any older resourceVersion gets 410 Expired."""
        return self.store.compact()

    def reset(self) -> None:
        """Clear faults, the request log and deny rules."""
        self.clear_faults()
        self.clear_requests()
        self.clear_denials()


__all__ = ["ApiError", "KubeSandbox"]
