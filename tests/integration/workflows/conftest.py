"""Fixtures for workflow tests: a sandbox cluster with GPU nodes, a runtime on the test
database, and an inline task queue that runs follow-up steps when the test says so."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
from kubernetes.client import Configuration

from config.settings import EXAMPLE_POLICY
from gpulease.wiring import load_checked_policy
from leases.models import Lease
from leases.records import ensure_team
from leases.states import LeaseState
from leases.store import session_scope
from provisioners.kube.client import api_client_for
from provisioners.kube.retry import RetryPolicy
from sandbox.kube import KubeSandbox
from workflows import outbox, sweeps
from workflows import reconcile as reconciler
from workflows import runtime as runtime_module
from workflows.notify import LoggingNotifier
from workflows.runtime import Runtime
from workflows.steps import extending, moving, placing, provisioning, reclaiming

POLICY = load_checked_policy(EXAMPLE_POLICY)


def roomy_policy(**limits):
    """The example policy with quotas and per-user limits out of the way (capacity decides)."""
    import yaml

    from config.policy import parse_policy

    data = yaml.safe_load(EXAMPLE_POLICY.read_text())
    for team in data["teams"]:
        team["quota"] = {"tiers": {t["name"]: 1000 for t in data["tiers"]}, "total_gpus": None}
    data["limits"]["max_live_leases_per_user"] = 1000
    data["expiry"].update(limits)
    return parse_policy(data)


def gpu_node(name: str, tier: str, *, gpus: int = 8) -> dict:
    """A Node as GPU Feature Discovery and the GPU Operator label it, serving `tier`."""
    shapes = {
        "h100-1g": ("NVIDIA-H100-80GB-HBM3-MIG-1g.10gb", 7, 1, "all-1g.10gb", None),
        "h100-3g": ("NVIDIA-H100-80GB-HBM3-MIG-3g.40gb", 2, 1, "all-3g.40gb", None),
        "h100-full": ("NVIDIA-H100-80GB-HBM3", 1, 1, "all-disabled", None),
        "h100-shared": ("NVIDIA-H100-80GB-HBM3-SHARED", 1, 4, "all-disabled", "time-sliced-4"),
        "l40s-shared": ("NVIDIA-L40S-SHARED", 1, 4, None, "time-sliced-4"),
    }
    product, per_gpu, replicas, mig_config, plugin = shapes[tier]
    labels = {
        "nvidia.com/gpu.product": product,
        "nvidia.com/gpu.count": str(gpus * per_gpu),
        "nvidia.com/gpu.replicas": str(replicas),
        "gpulease.io/tier": tier,
    }
    if mig_config:
        labels |= {
            "nvidia.com/mig.capable": "true",
            "nvidia.com/mig.strategy": "single",
            "nvidia.com/mig.config": mig_config,
            "nvidia.com/mig.config.state": "success",
        }
    if plugin:
        labels["nvidia.com/device-plugin.config"] = plugin
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": labels},
        "spec": {},
        "status": {
            "capacity": {
                "cpu": "128",
                "memory": "1Ti",
                "pods": "110",
                "nvidia.com/gpu": str(gpus * per_gpu * replicas),
            },
            "allocatable": {
                "cpu": "128",
                "memory": "1Ti",
                "pods": "110",
                "nvidia.com/gpu": str(gpus * per_gpu * replicas),
            },
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }


def gpu_pod(kube, name: str, node: str | None, namespace: str = "default", **spec) -> dict:
    """Create a pod holding one GPU, on `node` (None: where the scheduler puts it; in "default":
    outside any lease), with extra pod spec fields in `spec`; return it as stored."""
    kube.create(
        "pods",
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {
                **({"nodeName": node} if node else {}),
                "containers": [{"name": "c", "image": "cuda", "resources": {"limits": {"nvidia.com/gpu": "1"}}}],
                **spec,
            },
        },
    )
    return kube.get("pods", name, namespace=namespace)


def running_lease(rt, kube, *, node: str, tier: str, hours: float) -> str:
    """Record a live lease of `tier` ending in `hours`, with one GPU pod on `node`; return its
    namespace."""
    namespace = f"run-{node}"
    now = rt.now()
    with session_scope(rt.engine) as session:
        session.add(
            Lease(
                namespace=namespace,
                cluster="sandbox",
                requester="U0RUN",
                team="ml-research",
                tier=tier,
                units=1,
                duration_seconds=int(hours * 3600),
                state=LeaseState.ACTIVE,
                created_at=now,
                updated_at=now,
                decided_at=now,
                expires_at=now + timedelta(hours=hours),
            )
        )
    kube.create("namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    gpu_pod(kube, f"busy-{node}", node, namespace)
    return namespace


class Clock:
    """A settable clock for the runtime."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> datetime:
        self.now += delta
        return self.now


class InlineQueue:
    """Collects enqueued steps; `drain()` runs them in order, as a worker would."""

    def __init__(self) -> None:
        self.pending: deque[tuple[str, tuple]] = deque()
        self.ran: list[tuple[str, tuple]] = []
        self.run_moves = True  # False: node moves are held in `held_moves` for the test to step
        self.held_moves: list[int] = []
        self.rt: Runtime | None = None

    def __call__(self, name: str, *args: object) -> None:
        self.pending.append((name, args))

    def drain(self, limit: int = 500) -> list[tuple[str, tuple]]:
        assert self.rt is not None
        steps: dict[str, Callable] = {
            "place": placing.place_lease,
            "provision": provisioning.provision,
            "reclaim": reclaiming.reclaim,
            "refresh": extending.refresh,
            "deliver": outbox.deliver_pending,
            "wake_waitlist": sweeps.wake_waitlist,
            "drain_node": moving.drain,
            "undrain_node": moving.undrain,
            "reconcile": reconciler.reconcile_all,
        }
        done = []
        for _ in range(limit):
            if not self.pending:
                return done
            name, args = self.pending.popleft()
            if name == "move_node" and not self.run_moves:
                self.held_moves.append(args[0])
            elif name == "move_node":
                for _ in range(1000):
                    if not moving.advance_move(self.rt, *args).again:
                        break
                else:
                    raise AssertionError(f"node move {args} did not finish")
            else:
                steps[name](self.rt, *args)
            done.append((name, args))
            self.ran.append((name, args))
        raise AssertionError(f"queue still busy after {limit} steps: {list(self.pending)[:5]}")


@pytest.fixture
def empty_cluster(tmp_path_factory) -> str:
    """A sandbox cluster file with no nodes: each test adds the GPU nodes it needs."""
    path = tmp_path_factory.mktemp("cluster") / "empty.yaml"
    path.write_text("name: sandbox\nnodes: []\n")
    return str(path)


@pytest.fixture
def kube(empty_cluster) -> Iterator[KubeSandbox]:
    with KubeSandbox(empty_cluster, port=0, namespace_delay=0.0) as sandbox:
        yield sandbox


@pytest.fixture
def clock() -> Clock:
    return Clock(datetime(2026, 3, 2, 9, 0, tzinfo=UTC))


@pytest.fixture
def make_runtime(engine, kube, clock) -> Callable[..., Runtime]:
    """Build a runtime on the test database and sandbox cluster (the example policy)."""
    made: list[Runtime] = []

    def make(
        *, policy=POLICY, nodes=(("h100-1g-0", "h100-1g"), ("h100-3g-0", "h100-3g")), **kwargs
    ) -> Runtime:
        for name, tier, *gpus in nodes:
            kube.create("nodes", gpu_node(name, tier, gpus=gpus[0] if gpus else 8))
        client = api_client_for(Configuration(host=kube.url), request_timeout=5)
        queue = InlineQueue()
        with session_scope(engine) as session:
            for team in policy.teams:
                ensure_team(session, name=team.name, now=clock())
        rt = Runtime(
            engine=engine,
            policy=policy,
            notifier=LoggingNotifier(),
            kube=lambda _cluster: client,
            retry=RetryPolicy(attempts=4, seconds=10, base_delay=0.01, max_delay=0.05),
            clock=clock,
            teardown_timeout=10,
            teardown_poll=0.01,
            enqueue=queue,
            **kwargs,
        )
        queue.rt = rt
        rt.queue = queue  # type: ignore[attr-defined]
        runtime_module.install(rt)
        made.append(rt)
        return rt

    yield make
    for rt in made:
        rt.kube("x").close()
