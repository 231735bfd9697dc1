"""Workflow throughput and latency, and the cost of one minute sweep over 100,000 leases.

    python -m bench.workflows [--json] [--quick]

Throughput and latency: a `gpulease worker` with 2 processes on a private Redis, the store on
PostgreSQL, against the sandbox Kubernetes API with 8 H100 nodes. A burst of approved
requests measures leases per minute (first approval to last activation); a paced run at a
steady rate measures approval → active latency per lease (p50/p95) from the store's own
timestamps. The sweep: 100,000 leases (expiries spread over 30 days) inserted into
PostgreSQL, then one `sweep()` timed.

Prints `{"leases_per_min", "p50_s", "p95_s", "sweep_100k_s"}` (plus details) with --json.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml
from rich.console import Console
from sqlalchemy import create_engine, text
from sqlmodel import col, func, select

from config.settings import EXAMPLE_POLICY, Settings
from leases.models import Lease
from leases.states import LeaseState
from leases.store import session_scope, upgrade
from sandbox.kube import KubeSandbox
from sandbox.redis import PrivateRedis

ROOT = Path(__file__).resolve().parents[1]
PG = os.environ.get("GPULEASE_BENCH_POSTGRES_URL", "postgresql+psycopg://root@127.0.0.1:5432/test")
err = Console(stderr=True)


def _schema_url(schema: str) -> str:
    sep = "&" if "?" in PG else "?"
    return f"{PG}{sep}options=-csearch_path%3D{schema}"


class Schema:
    """A throwaway PostgreSQL schema, migrated, dropped afterwards."""

    def __init__(self) -> None:
        self.name = f"gpulease_bench_{uuid.uuid4().hex[:8]}"
        self.admin = create_engine(PG, isolation_level="AUTOCOMMIT")
        self.url = _schema_url(self.name)

    def __enter__(self) -> Schema:
        with self.admin.connect() as c:
            c.execute(text(f'CREATE SCHEMA "{self.name}"'))
        upgrade(self.url)
        return self

    def __exit__(self, *exc: object) -> None:
        with self.admin.connect() as c:
            c.execute(text(f'DROP SCHEMA IF EXISTS "{self.name}" CASCADE'))
        self.admin.dispose()


def _policy_file(tmp: Path) -> Path:
    data = yaml.safe_load(EXAMPLE_POLICY.read_text())
    for team in data["teams"]:
        team["quota"] = {"tiers": {t["name"]: 100000 for t in data["tiers"]}, "total_gpus": None}
    data["limits"]["max_live_leases_per_user"] = 100000
    # Every bench request is auto-approved, so the clock starts at approval.
    data["approvals"]["auto_approve"] = [{"name": "bench", "tiers": None, "max_units": 4}]
    path = tmp / "policy.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _empty_cluster(tmp: Path) -> Path:
    path = tmp / "cluster.yaml"
    path.write_text("name: sandbox\nnodes: []\n")
    return path


def _node(name: str) -> dict:
    labels = {
        "nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3-MIG-1g.10gb",
        "nvidia.com/gpu.count": "56", "nvidia.com/gpu.replicas": "1",
        "nvidia.com/mig.capable": "true", "nvidia.com/mig.strategy": "single",
        "nvidia.com/mig.config": "all-1g.10gb", "nvidia.com/mig.config.state": "success",
        "gpulease.io/tier": "h100-1g",
    }
    alloc = {"cpu": "128", "memory": "1Ti", "pods": "110", "nvidia.com/gpu": "56"}
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels}, "spec": {},
            "status": {"capacity": alloc, "allocatable": alloc, "conditions": [{"type": "Ready", "status": "True"}]}}


def _latencies(rt, ids: list[str]) -> list[float]:
    with session_scope(rt.engine) as session:
        rows = session.exec(select(Lease.decided_at, Lease.active_at).where(col(Lease.id).in_(ids))).all()
    return [(active - decided).total_seconds() for decided, active in rows if decided and active]


def _active_count(rt, ids: list[str]) -> int:
    with session_scope(rt.engine) as session:
        return session.exec(
            select(func.count()).select_from(Lease).where(col(Lease.id).in_(ids), Lease.state == LeaseState.ACTIVE)
        ).one()


def _wait_active(rt, ids: list[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while _active_count(rt, ids) < len(ids):
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {_active_count(rt, ids)} of {len(ids)} leases became active in {timeout}s")
        time.sleep(0.2)


def pipeline(n_burst: int, n_paced: int, rate: float) -> dict:
    """Measure leases/min on a burst and latency at a steady rate, with a real worker."""
    from gpulease.services import install_runtime
    from workflows import api
    from workflows.steps.requests import SubmitRequest

    tmp = Path(os.environ.get("TMPDIR", "/tmp")) / f"gpulease-bench-{uuid.uuid4().hex[:6]}"
    tmp.mkdir(parents=True)
    with Schema() as schema, PrivateRedis(workdir=tmp) as redis, KubeSandbox(_empty_cluster(tmp), port=0, namespace_delay=0.0) as kube:
        for i in range(8):
            kube.create("nodes", _node(f"h100-{i}"))
        policy = _policy_file(tmp)
        settings = Settings(database_url=schema.url, broker_url=redis.url, policy_file=policy, kube_api_url=kube.url)
        rt = install_runtime(settings)
        env = {k: v for k, v in os.environ.items() if not k.startswith("GPULEASE_")}
        env.update({"GPULEASE_DATABASE_URL": schema.url, "GPULEASE_BROKER_URL": redis.url,
                    "GPULEASE_POLICY_FILE": str(policy), "GPULEASE_KUBE_API_URL": kube.url})
        log = (tmp / "worker.log").open("wb")
        worker = subprocess.Popen(
            [sys.executable, "-m", "gpulease", "worker", "-c", "2", "--pool", "prefork", "-l", "WARNING"],
            env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        counter = iter(range(10**9))

        def submit(_: int = 0) -> str:
            i = next(counter)
            return api.submit(SubmitRequest(requester="U0ALICE", team="ml-research", tier="h100-1g", units=1,
                                            namespace=f"bench-{i}", duration=timedelta(hours=8))).lease_id

        try:
            _wait_active(rt, [submit()], timeout=60)  # warm-up: worker up, discovery done
            err.print(f"burst of {n_burst} requests")
            with ThreadPoolExecutor(max_workers=8) as pool:
                burst = list(pool.map(submit, range(n_burst)))
            _wait_active(rt, burst, timeout=max(120, n_burst))
            with session_scope(rt.engine) as session:
                first, last = session.exec(
                    select(func.min(Lease.decided_at), func.max(Lease.active_at)).where(col(Lease.id).in_(burst))
                ).one()
            makespan = (last - first).total_seconds()
            err.print(f"{n_paced} requests at {rate}/s")
            paced = []
            for _ in range(n_paced):
                paced.append(submit())
                time.sleep(1 / rate)  # the arrival process of the benchmark, not a wait
            _wait_active(rt, paced, timeout=120)
            lat = sorted(_latencies(rt, paced))
        finally:
            os.killpg(worker.pid, signal.SIGTERM)
            worker.wait(30)
            rt.engine.dispose()
    return {
        "leases_per_min": round(n_burst / makespan * 60, 1),
        "burst": n_burst,
        "burst_makespan_s": round(makespan, 2),
        "p50_s": round(statistics.median(lat), 3),
        "p95_s": round(lat[max(0, int(len(lat) * 0.95) - 1)], 3),
        "paced": n_paced,
        "paced_rate_per_s": rate,
    }


def sweep_bench(n: int) -> dict:
    """Time one sweep over `n` leases in PostgreSQL (expiries spread over 30 days)."""
    from gpulease.wiring import build_runtime
    from workflows.sweeps import sweep

    now = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
    rng = random.Random(7)
    with Schema() as schema:
        engine = create_engine(schema.url)
        rows = []
        for i in range(n):
            live = rng.random() < 0.8
            active_at = now - timedelta(seconds=rng.randint(0, 14 * 86400))
            expires = now + timedelta(seconds=rng.randint(60, 30 * 86400)) if live else active_at
            rows.append({
                "id": uuid.uuid4().hex, "namespace": f"ns-{i}", "cluster": "sandbox", "requester": f"U{i % 500}",
                "team": "ml-research", "tier": "h100-1g", "units": 1, "duration_seconds": 86400, "reason": "",
                "priority": 0, "state": "active" if live else "reclaimed", "created_at": active_at,
                "updated_at": active_at, "active_at": active_at, "expires_at": expires, "extensions": 0,
                "extended_seconds": 0, "version": 1,
            })
        with engine.begin() as c:
            c.execute(text("INSERT INTO team (name, created_at) VALUES ('ml-research', now()), ('vision', now())"))
            columns = ", ".join(rows[0])
            values = ", ".join(f":{k}" for k in rows[0])
            for start in range(0, n, 5000):
                c.execute(text(f"INSERT INTO lease ({columns}) VALUES ({values})"), rows[start:start + 5000])
            c.execute(text("ANALYZE lease"))
        engine.dispose()
        settings = Settings(database_url=schema.url, kube_api_url="http://127.0.0.1:9")
        rt = build_runtime(settings, clock=lambda: now)
        rt.enqueue = lambda *a: None  # measure the sweep itself, not what it hands on
        sweep(rt, now)  # warm caches and connections
        timings = []
        for minute in range(1, 4):
            started = time.perf_counter()
            report = sweep(rt, now + timedelta(minutes=minute))
            timings.append(time.perf_counter() - started)
        rt.engine.dispose()
    return {"sweep_100k_s": round(statistics.median(timings), 3), "sweep_leases": n,
            "sweep_warned_last": len(report.warned), "sweep_expired_last": len(report.expired)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print JSON only")
    parser.add_argument("--quick", action="store_true", help="smaller runs (under a minute)")
    args = parser.parse_args()
    if args.quick:
        result = pipeline(n_burst=60, n_paced=20, rate=4.0) | sweep_bench(20_000)
    else:
        result = pipeline(n_burst=300, n_paced=60, rate=4.0) | sweep_bench(100_000)
    if args.json:
        print(json.dumps(result))
    else:
        Console().print_json(json.dumps(result))


if __name__ == "__main__":
    main()
