"""The embedded default, whole: everything in one process, nothing to install.

SQLite store, the in-memory Celery broker with a worker thread, a minute sweep thread, the
sandbox Kubernetes API with a simulated GPU cluster and GPU Operator, the sandbox Slack Web
API, and the real Bolt app served over HTTP on 127.0.0.1. `make demo` drives it through the
HTTP endpoints; `gpulease dev` keeps it running for a person to try.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from bot.app import build_app
from bot.client import make_client
from bot.web import wsgi_app
from config.settings import EXAMPLE_POLICY, Settings
from gpulease.services import embedded_worker, install_runtime
from gpulease.wiring import load_checked_policy, make_notifier
from leases.store import upgrade
from sandbox.kube import KubeSandbox
from sandbox.slack import DEFAULT_SIGNING_SECRET, DEFAULT_TOKEN, SignedClient, SlackSandbox
from workflows import sweeps
from workflows.runtime import Runtime

logger = logging.getLogger(__name__)
# The embedded stack's SQLite file in its workdir, deleted and recreated at every start.
EMBEDDED_DB = "gpulease-embedded.db"
CLUSTER = Path(__file__).parent / "demo" / "cluster.yaml"


class SettableClock:
    """Real time plus an offset the demo can move forward (to reach expiries in seconds)."""

    def __init__(self) -> None:
        self.offset = timedelta(0)
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return datetime.now(UTC) + self.offset

    def advance(self, delta: timedelta) -> datetime:
        """Jump forward by `delta` and return the new now."""
        with self._lock:
            self.offset += delta
        return self()


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, *args: object) -> None:  # the access log would drown the demo's output
        pass


@dataclass
class Embedded:
    """The running parts; `to_bot` sends what Slack would send to the bot."""

    workdir: Path
    kube: KubeSandbox
    slack: SlackSandbox
    runtime: Runtime
    clock: SettableClock
    bot_url: str
    to_bot: SignedClient
    settings: Settings
    _stop: threading.Event = field(default_factory=threading.Event)

    def sweep(self):
        """Run the minute sweep now (expiry, warnings, timeouts, stuck steps)."""
        report = sweeps.sweep(self.runtime)
        sweeps.wake_waitlist(self.runtime)
        return report


@contextlib.contextmanager
def embedded(
    workdir: Path, *, cluster_file: Path = CLUSTER, operator_delay: float = 1.0, sweep_every: float | None = 60.0,
    port: int = 0,
) -> Iterator[Embedded]:
    """Start the whole embedded stack; stop it all on exit."""
    workdir.mkdir(parents=True, exist_ok=True)
    # Its own name, never the default store's (./gpulease.db): `--workdir .` must not wipe that.
    db = workdir / EMBEDDED_DB
    for stale in (db, db.with_suffix(".db-journal")):
        stale.unlink(missing_ok=True)
    clock = SettableClock()
    with contextlib.ExitStack() as stack:
        kube = stack.enter_context(KubeSandbox(cluster_file, port=0, operator_delay=operator_delay))
        slack = stack.enter_context(SlackSandbox(port=0))
        settings = Settings(
            database_url=f"sqlite:///{db}",
            broker_url="memory://localhost/",
            policy_file=EXAMPLE_POLICY,
            kube_api_url=kube.url,
            slack_api_url=slack.url,
            slack_bot_token=DEFAULT_TOKEN,
            slack_signing_secret=DEFAULT_SIGNING_SECRET,
            kube_retry_attempts=6,
            kube_retry_seconds=30,
        )
        upgrade(settings.database_url)
        policy = load_checked_policy(settings.policy_file)
        client = make_client(DEFAULT_TOKEN, base_url=slack.url)
        rt = install_runtime(settings, policy=policy, notifier=make_notifier(settings, policy, client=client),
                             clock=clock)
        rt.teardown_poll = 0.05
        stack.enter_context(embedded_worker(rt, broker_url=settings.broker_url))
        app = build_app(client=client, signing_secret=DEFAULT_SIGNING_SECRET, policy=policy)
        server = make_server("127.0.0.1", port, wsgi_app(app, health=lambda: {"store": "ok"}),
                             server_class=_Server, handler_class=_QuietHandler)
        threading.Thread(target=server.serve_forever, name="embedded-bot", daemon=True).start()
        stack.callback(server.server_close)
        stack.callback(server.shutdown)
        bot_url = f"http://127.0.0.1:{server.server_port}/slack/events"
        env = Embedded(workdir=workdir, kube=kube, slack=slack, runtime=rt, clock=clock, bot_url=bot_url,
                       to_bot=SignedClient(bot_url, DEFAULT_SIGNING_SECRET, slack.url), settings=settings)
        if sweep_every:
            stack.enter_context(_sweeping(env, sweep_every))
        yield env


@contextlib.contextmanager
def _sweeping(env: Embedded, every: float) -> Iterator[None]:
    """Run the minute sweep on a thread, as beat would (there is no beat in one process)."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(every):
            try:
                env.sweep()
            except Exception:  # noqa: BLE001 - keep sweeping; the next run retries what failed
                logger.exception("embedded.sweep_failed")

    thread = threading.Thread(target=loop, name="embedded-sweep", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)
