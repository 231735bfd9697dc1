"""Run the workflow services: a Celery worker, beat, or an in-process worker (embedded).

Production runs `gpulease worker` and `gpulease beat` as separate processes on a Redis
broker; the embedded default runs a worker thread on the in-memory broker inside the same
process as everything else.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path

from celery.contrib.testing.worker import start_worker
from celery.signals import worker_process_init

from config.settings import Settings
from gpulease.wiring import KubeClients, build_runtime
from workflows import runtime as runtime_module
from workflows.celery_app import app, configure
from workflows.queues import ALL
from workflows.runtime import Runtime
from workflows.tasks import use_celery

logger = logging.getLogger(__name__)


def install_runtime(settings: Settings, **kwargs) -> Runtime:
    """Build the runtime, point Celery at the broker, and install both in this process."""
    rt = build_runtime(settings, **kwargs)
    configure(broker_url=settings.broker_url, visibility_timeout=settings.broker_visibility_timeout)
    use_celery(rt)
    return runtime_module.install(rt)


@worker_process_init.connect
def _after_fork(**_: object) -> None:
    # Prefork children inherit the parent's database and HTTP connection pools; sharing a
    # socket between processes corrupts both, so each child opens its own.
    with contextlib.suppress(RuntimeError):
        rt = runtime_module.current()
        rt.engine.dispose(close=False)
        if isinstance(rt.kube, KubeClients):
            rt.kube.reset()


def serve_metrics(rt: Runtime, port: int) -> None:
    """Serve Prometheus metrics on `port`: the store's figures plus this process's counters.

    With PROMETHEUS_MULTIPROC_DIR set (prefork workers), the children's counters are merged.
    """
    from prometheus_client import REGISTRY, CollectorRegistry, multiprocess, start_http_server

    from gpulease.metrics import StoreCollector

    registry = REGISTRY
    shared = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if shared:
        # Files left by an earlier run in this directory would be counted again: start clean.
        for stale in Path(shared).glob("*.db"):
            stale.unlink(missing_ok=True)
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    registry.register(StoreCollector(rt.engine))
    start_http_server(port, registry=registry)


def run_worker(settings: Settings, *, queues: tuple[str, ...] = ALL, concurrency: int = 2,
               pool: str = "prefork", loglevel: str = "INFO", metrics_port: int | None = None) -> None:
    """Run a Celery worker in this process until it is stopped."""
    rt = install_runtime(settings)
    if metrics_port:
        serve_metrics(rt, metrics_port)
    argv = ["worker", "-Q", ",".join(queues), "-c", str(concurrency), "-P", pool, "-l", loglevel,
            "--without-gossip", "--without-mingle"]
    app.worker_main(argv)


def run_beat(settings: Settings, *, schedule_file: str, loglevel: str = "INFO") -> None:
    """Run Celery beat (the minute sweep and the reconciler) until it is stopped."""
    configure(broker_url=settings.broker_url, visibility_timeout=settings.broker_visibility_timeout)
    app.start(["beat", "-s", schedule_file, "-l", loglevel])


@contextlib.contextmanager
def embedded_worker(rt: Runtime, *, broker_url: str = "memory://") -> Iterator[Runtime]:
    """Run a worker thread on the in-memory broker for the embedded default and tests."""
    configure(broker_url=broker_url)
    use_celery(rt)
    runtime_module.install(rt)
    with start_worker(app, pool="threads", concurrency=2, perform_ping_check=False, shutdown_timeout=30,
                      loglevel="WARNING", queues=list(ALL)):
        yield rt
