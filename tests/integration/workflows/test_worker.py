"""The pipeline through real Celery worker processes on Redis and PostgreSQL, under faults:
50 concurrent requests, a worker killed mid-provisioning, Redis restarted, 30% API failures."""

from __future__ import annotations

import concurrent.futures
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from sqlmodel import func, select

from config.settings import EXAMPLE_POLICY, Settings
from leases.models import AuditEvent, Lease, OutboxMessage, Reservation
from leases.states import LeaseState
from leases.store import session_scope, upgrade
from sandbox.kube import KubeSandbox
from sandbox.redis import PrivateRedis
from tests.integration.workflows.conftest import gpu_node
from workflows import api
from workflows.steps.requests import SubmitRequest
from workflows.sweeps import SweepReport, stuck_steps

pytestmark = [
    pytest.mark.redis,
    pytest.mark.timeout(300),
    # Real workers share the database across processes: PostgreSQL, as in production.
    pytest.mark.parametrize("db_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True),
]
ROOT = Path(__file__).resolve().parents[3]


def wait_until(predicate: Callable[[], bool], *, timeout: float, what: str, every: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(every)


class Worker:
    """`gpulease worker` in its own process group, so the test can SIGKILL all of it."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env, self.log = env, log
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        out = self.log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gpulease", "worker", "-c", "2", "--pool", "prefork", "-l", "WARNING"],
            env=self.env,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture
def stack(db_url, redis_url, tmp_path, empty_cluster) -> Iterator[dict]:
    """Sandbox cluster, private Redis, migrated PostgreSQL, a policy, and a runtime here."""
    upgrade(db_url)
    data = yaml.safe_load(EXAMPLE_POLICY.read_text())
    for team in data["teams"]:
        team["quota"] = {"tiers": {t["name"]: 1000 for t in data["tiers"]}, "total_gpus": None}
    data["limits"]["max_live_leases_per_user"] = 1000
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text(yaml.safe_dump(data))
    redis = PrivateRedis(workdir=tmp_path).start()
    with KubeSandbox(empty_cluster, port=0, namespace_delay=0.0) as kube:
        for i in range(4):
            kube.create("nodes", gpu_node(f"h100-1g-{i}", "h100-1g"))
        env = {k: v for k, v in os.environ.items() if not k.startswith("GPULEASE_")}
        env.update(
            {
                "GPULEASE_DATABASE_URL": db_url,
                "GPULEASE_BROKER_URL": redis.url,
                "GPULEASE_POLICY_FILE": str(policy_file),
                "GPULEASE_KUBE_API_URL": kube.url,
                "GPULEASE_KUBE_RETRY_ATTEMPTS": "10",
                "GPULEASE_KUBE_RETRY_SECONDS": "60",
                "GPULEASE_KUBE_REQUEST_TIMEOUT": "5",
                "GPULEASE_BROKER_VISIBILITY_TIMEOUT": "3600",
            }
        )
        from gpulease.services import install_runtime

        settings = Settings(
            database_url=db_url, broker_url=redis.url, policy_file=policy_file, kube_api_url=kube.url
        )
        rt = install_runtime(settings)
        workers: list[Worker] = []

        def worker() -> Worker:
            w = Worker(env, tmp_path / "worker.log")
            w.start()
            workers.append(w)
            return w

        try:
            yield {"kube": kube, "redis": redis, "rt": rt, "worker": worker, "log": tmp_path / "worker.log"}
        finally:
            for w in workers:
                w.stop()
            redis.stop()
            rt.engine.dispose()


def submit(i: int, *, units: int = 1) -> str:
    s = api.submit(
        SubmitRequest(
            requester="U0ALICE",
            team="ml-research",
            tier="h100-1g",
            units=units,
            namespace=f"load-{i}",
            duration=timedelta(hours=8),
            reason="load",
            requester_email="alice@example.com",
        )
    )
    return s.lease_id


def states(rt) -> dict[str, int]:
    with session_scope(rt.engine) as session:
        rows = session.exec(select(Lease.state, func.count()).group_by(Lease.state)).all()
    return {str(state): n for state, n in rows}


def log_tail(stack) -> str:
    return stack["log"].read_text()[-3000:] if stack["log"].exists() else ""


def test_fifty_concurrent_requests_all_end_active_once(stack):
    rt, kube = stack["rt"], stack["kube"]
    stack["worker"]()
    with concurrent.futures.ThreadPoolExecutor(max_workers=10) as pool:
        ids = list(pool.map(submit, range(50)))
    try:
        wait_until(lambda: states(rt).get("active") == 50, timeout=180, what="50 active leases")
    except AssertionError:
        raise AssertionError(f"{states(rt)}\n{log_tail(stack)}") from None
    assert len(set(ids)) == 50
    namespaces = [
        ns["metadata"]["name"] for ns in kube.list("namespaces") if ns["metadata"]["name"].startswith("load-")
    ]
    assert sorted(namespaces) == sorted(f"load-{i}" for i in range(50))
    with session_scope(rt.engine) as session:
        held = session.exec(select(Reservation.lease_id).where(Reservation.released_at.is_(None))).all()
        assert sorted(held) == sorted(ids)
        keys = session.exec(select(OutboxMessage.key)).all()
        assert len(keys) == len(set(keys)) == 100  # approved + active, once each
        activations = session.exec(
            select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "lease.active")
        ).one()
        assert activations == 50
    wait_until(lambda: _unsent(rt) == 0, timeout=30, what="every notification delivered")


def _unsent(rt) -> int:
    with session_scope(rt.engine) as session:
        return session.exec(
            select(func.count()).select_from(OutboxMessage).where(OutboxMessage.sent_at.is_(None))
        ).one()


def _resume_stuck(rt) -> list[str]:
    report = SweepReport()
    stuck_steps(rt, rt.now() + rt.stuck_after + timedelta(seconds=1), report)
    return report.resumed


def test_worker_killed_mid_provisioning_ends_active_exactly_once(stack):
    rt, kube = stack["rt"], stack["kube"]
    # Slow provisioning down so the kill lands in the middle of it.
    kube.add_fault(kind="delay", seconds=1.5, method="PATCH", path="/api/v1/namespaces/killme")
    worker = stack["worker"]()
    lease_id = api.submit(
        SubmitRequest(
            requester="U0ALICE",
            team="ml-research",
            tier="h100-1g",
            units=1,
            namespace="killme",
            duration=timedelta(hours=8),
        )
    ).lease_id
    wait_until(
        lambda: _state(rt, lease_id) == LeaseState.PROVISIONING and _patches(kube, "killme") > 0,
        timeout=60,
        what="provisioning under way",
    )
    worker.kill()
    assert _state(rt, lease_id) is LeaseState.PROVISIONING
    stack["worker"]()
    # The dead worker's message sits unacknowledged; the store knows the step is unfinished.
    assert _resume_stuck(rt) == [lease_id]
    wait_until(lambda: _state(rt, lease_id) is LeaseState.ACTIVE, timeout=60, what="lease active")
    with session_scope(rt.engine) as session:
        events = session.exec(select(AuditEvent.action).where(AuditEvent.lease_id == lease_id)).all()
    assert events.count("lease.active") == 1
    assert [n["metadata"]["name"] for n in kube.list("namespaces")].count("killme") == 1


def _state(rt, lease_id: str) -> LeaseState:
    with session_scope(rt.engine) as session:
        return session.get(Lease, lease_id).state


def _patches(kube, namespace: str) -> int:
    return len([r for r in kube.requests(method="PATCH") if f"/namespaces/{namespace}" in r.path])


def test_redis_restart_loses_nothing(stack):
    rt, redis = stack["rt"], stack["redis"]
    worker = stack["worker"]()
    first = [submit(i) for i in range(10)]
    wait_until(lambda: states(rt).get("active", 0) >= 3, timeout=60, what="some leases active")
    redis.stop()  # every queued message is gone with it: Redis here keeps nothing on disk
    more = [submit(i) for i in range(10, 15)]  # enqueueing fails while Redis is down; the rows stay
    redis.start()
    deadline = time.monotonic() + 120
    while states(rt).get("active", 0) < 15:
        assert time.monotonic() < deadline, f"{states(rt)}\n{log_tail(stack)}"
        _resume_stuck(rt)  # the reconciler's stuck-step sweep, as beat would run it
        if worker.proc is not None and worker.proc.poll() is not None:
            # Now and then Celery's consumer fails for good while it reconnects, and the
            # worker exits; its Deployment starts a new one, as here.
            worker = stack["worker"]()
        time.sleep(0.5)
    assert sorted(first + more) == sorted(_ids_in(rt, LeaseState.ACTIVE))


def _ids_in(rt, state: LeaseState) -> list[str]:
    with session_scope(rt.engine) as session:
        return list(session.exec(select(Lease.id).where(Lease.state == state)).all())


def test_thirty_percent_transient_api_failures_still_end_active(stack):
    rt, kube = stack["rt"], stack["kube"]
    for status, share in ((503, 0.1), (500, 0.1), (429, 0.1)):
        kube.add_fault(
            kind="status",
            status=status,
            probability=share,
            seed=status,
            path="/api",
            retry_after=0.05 if status == 429 else None,
        )
    stack["worker"]()
    ids = [submit(i) for i in range(20)]
    try:
        wait_until(lambda: states(rt).get("active") == 20, timeout=180, what="20 active leases")
    except AssertionError:
        raise AssertionError(f"{states(rt)}\n{log_tail(stack)}") from None
    failed = [r for r in kube.requests() if r.status >= 500 or r.status == 429]
    assert len(failed) > 10  # the faults really fired
    assert sorted(ids) == sorted(_ids_in(rt, LeaseState.ACTIVE))
