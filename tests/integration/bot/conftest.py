"""Fixtures for bot tests: the real Bolt app served over HTTP on a free port, the Slack
sandbox it talks to, the Kubernetes sandbox (default GPU cluster) the workflows act on, a
SQLite state store, and a background queue running the real Celery task functions.

Tests drive the app only through `to_bot` (signed requests, as Slack sends them) and check
what it did through the Slack sandbox's recorded calls. Nothing sleeps to wait: `eventually`
polls a condition with a bound.
"""

from __future__ import annotations

import queue
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest
from kubernetes.client import Configuration

from bot.app import build_app
from bot.client import make_client
from bot.notifier import SlackNotifier
from bot.web import wsgi_app
from config.settings import EXAMPLE_POLICY
from gpulease.wiring import load_checked_policy
from leases.records import ensure_team
from leases.store import make_engine, session_scope, upgrade
from provisioners.kube.client import api_client_for
from provisioners.kube.retry import RetryPolicy
from sandbox.kube import KubeSandbox
from sandbox.slack import DEFAULT_SIGNING_SECRET, DEFAULT_TOKEN, SignedClient, SlackSandbox
from workflows import runtime as runtime_module
from workflows.runtime import Runtime

POLICY = load_checked_policy(EXAMPLE_POLICY)


def eventually(predicate: Callable[[], Any], *, timeout: float = 10.0, what: str = "the condition") -> Any:
    """Return predicate()'s first truthy value, polling every 20 ms; fail after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


class BackgroundQueue:
    """Runs enqueued steps on a few daemon threads, as a thread-pool worker would, through the
    real Celery task functions (Task.apply: retries and compensation included, no broker).

    Daemon threads: a step stuck on a slow sandbox when a test ends is abandoned, not joined.
    """

    def __init__(self, threads: int = 4) -> None:
        self._jobs: queue.Queue[tuple[str, tuple]] = queue.Queue()
        self.done: list[tuple[str, tuple]] = []
        self.failures: list[str] = []
        self.closed = False
        for n in range(threads):
            threading.Thread(target=self._run, name=f"bot-test-queue-{n}", daemon=True).start()

    def __call__(self, name: str, *args: object) -> None:
        self._jobs.put((name, args))

    def _run(self) -> None:
        from workflows.tasks import TASKS

        while True:
            name, args = self._jobs.get()
            if self.closed:  # the test is over: later tests install other runtimes
                self._jobs.task_done()
                continue
            try:
                result = TASKS[name].apply(args=args, throw=False)
                if result.failed():
                    self.failures.append(f"{name}{args}: {result.traceback}")
            except Exception:  # noqa: BLE001 - recorded for the test to see
                self.failures.append(f"{name}{args}: {traceback.format_exc()}")
            finally:
                self.done.append((name, args))
                self._jobs.task_done()

    def close(self) -> None:
        """Drop whatever is still queued (a step already running finishes on its own)."""
        self.closed = True

    def idle(self) -> bool:
        """Say whether nothing is queued or running."""
        return self._jobs.unfinished_tasks == 0


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


@pytest.fixture
def slack() -> Iterator[SlackSandbox]:
    with SlackSandbox(port=0) as sandbox:
        yield sandbox


@pytest.fixture
def kube() -> Iterator[KubeSandbox]:
    with KubeSandbox(port=0, namespace_delay=0.0) as sandbox:
        yield sandbox


@pytest.fixture
def slack_client(slack: SlackSandbox):
    """The one WebClient (with retry handlers) shared by the app and the notifier."""
    return make_client(DEFAULT_TOKEN, base_url=slack.url)


@pytest.fixture
def runtime(tmp_path, kube: KubeSandbox, slack_client) -> Iterator[Runtime]:
    """The workflow runtime on a fresh SQLite store, notifying through Slack."""
    url = f"sqlite:///{tmp_path / 'gpulease.db'}"
    upgrade(url)
    engine = make_engine(url)
    with session_scope(engine) as session:
        for team in POLICY.teams:
            ensure_team(session, name=team.name, now=runtime_module.utc_now())
    api_client = api_client_for(Configuration(host=kube.url), request_timeout=10)
    work = BackgroundQueue()
    rt = Runtime(
        engine=engine,
        policy=POLICY,
        notifier=SlackNotifier(slack_client, approvals_channel=POLICY.approvals.channel,
                               admins=POLICY.admins.users),
        kube=lambda _cluster: api_client,
        retry=RetryPolicy(attempts=3, seconds=5, base_delay=0.01, max_delay=0.05),
        teardown_timeout=10,
        teardown_poll=0.02,
        enqueue=work,
    )
    rt.queue = work  # type: ignore[attr-defined]
    runtime_module.install(rt)
    yield rt
    work.close()
    engine.dispose()


@contextmanager
def served(app: Any) -> Iterator[str]:
    """Serve a Bolt app through bot.web (Bolt, /healthz, /metrics) on a free port; yield its base URL."""
    server = make_server("127.0.0.1", 0, wsgi_app(app, health=lambda: {"store": "ok"}),
                         server_class=_ThreadingWSGIServer, handler_class=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join()
        server.server_close()


@pytest.fixture
def bot_url(runtime: Runtime, slack_client) -> Iterator[str]:
    """Serve the real app on a free port; return its base URL."""
    with served(build_app(client=slack_client, signing_secret=DEFAULT_SIGNING_SECRET, policy=POLICY)) as url:
        yield url


@pytest.fixture
def to_bot(bot_url: str, slack: SlackSandbox) -> SignedClient:
    """Send signed requests to the app as Slack would."""
    return SignedClient(f"{bot_url}/slack/events", DEFAULT_SIGNING_SECRET, slack.url)
