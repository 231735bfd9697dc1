"""`gpulease serve` (Slack over HTTP on gunicorn) and `gpulease socket` (Slack over Socket Mode).

Both build the same thing: the workflow runtime with the Slack notifier, and the Bolt app
on one WebClient. On the embedded broker (memory://) a workflow worker thread runs in the
same process, since nothing else could consume its queue.

HTTP mode serves /slack/events, /healthz (readiness: the store answers), /livez (liveness:
the process answers, touching nothing else) and /metrics. Each gunicorn worker builds its own
app after the fork (connection pools must not cross a fork); run one worker with threads
per replica and scale with replicas behind the load balancer.
"""

from __future__ import annotations

import contextlib
import gc
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import typer
from gunicorn.app.base import BaseApplication
from prometheus_client import REGISTRY
from rich.markup import escape
from slack_bolt import App

from bot.app import build_app
from bot.client import make_client
from bot.web import wsgi_app
from config.policy import PolicyError
from config.settings import Settings, SettingsError, load_settings
from gpulease.console import err
from gpulease.logs import configure_logging
from gpulease.metrics import StoreCollector
from gpulease.services import embedded_worker, install_runtime
from gpulease.slack_check import check_slack_token
from gpulease.store_access import require_current, store_errors
from gpulease.wiring import load_checked_policy, make_notifier
from workflows.runtime import Runtime

logger = logging.getLogger(__name__)
WSGIApp = Callable[..., Iterable[bytes]]


@dataclass
class Bot:
    """A running bot's parts; `close()` stops the embedded worker, if any."""

    app: App
    runtime: Runtime
    stack: contextlib.ExitStack

    def health(self) -> dict[str, str]:
        """Check the state store answers (without a transaction, so no SQLite write lock)."""
        try:
            connection = self.runtime.engine.raw_connection()
            try:
                connection.cursor().execute("SELECT 1")
            finally:
                connection.close()
        except Exception as exc:  # noqa: BLE001 - any failure is the answer of a health check
            return {"store": f"{type(exc).__name__}: {exc}"}
        return {"store": "ok"}

    def close(self) -> None:
        self.stack.close()


def settle_heap() -> None:
    """Move everything built at start (modules, clients, the app) out of the collector's sight.

    None of it is ever garbage, yet each full collection scanned all of it, pausing every
    thread for tens of milliseconds: measured by bench.ack_latency as the slowest acks.
    """
    gc.collect()
    gc.freeze()


def build_bot(settings: Settings, *, socket_mode: bool = False) -> Bot:
    """Install the runtime (with the Slack notifier) and build the Bolt app on one client."""
    if settings.slack_bot_token is None:
        raise SettingsError("GPULEASE_SLACK_BOT_TOKEN is not set (the xoxb- token of the Slack app)")
    if not socket_mode and settings.slack_signing_secret is None:
        raise SettingsError("GPULEASE_SLACK_SIGNING_SECRET is not set (Basic Information > Signing Secret)")
    policy = load_checked_policy(settings.policy_file)
    client = make_client(settings.slack_bot_token.get_secret_value(), base_url=settings.slack_api_url)
    rt = install_runtime(settings, policy=policy, notifier=make_notifier(settings, policy, client=client))
    stack = contextlib.ExitStack()
    if settings.broker_url.startswith("memory://"):
        stack.enter_context(embedded_worker(rt, broker_url=settings.broker_url))
    secret = settings.slack_signing_secret.get_secret_value() if settings.slack_signing_secret else None
    app = build_app(client=client, signing_secret=secret, policy=policy, socket_mode=socket_mode)
    register_store_metrics(rt)
    return Bot(app, rt, stack)


_store_metrics_registered = False


def register_store_metrics(rt: Runtime) -> None:
    """Expose leases by state and pool units on this process's /metrics (once per process)."""
    global _store_metrics_registered
    if not _store_metrics_registered:
        REGISTRY.register(StoreCollector(rt.engine))
        _store_metrics_registered = True


LIVENESS_PATH = "/livez"
_ALIVE = b'{"status": "ok"}'


def with_liveness(application: WSGIApp) -> WSGIApp:
    """Answer /livez at once, before the app: liveness must not wait on the store or Slack.

    /healthz asks the store and /metrics counts leases in it; a probe on either would restart
    every replica while the database hangs, which fixes nothing.
    """

    def serve(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == LIVENESS_PATH:
            start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(_ALIVE)))])
            return [_ALIVE]
        return application(environ, start_response)

    return serve


def http_app(bot: Bot) -> WSGIApp:
    """Return the bot's WSGI application: Slack, /healthz, /metrics, and /livez."""
    return with_liveness(wsgi_app(bot.app, health=bot.health))


class _Gunicorn(BaseApplication):
    """gunicorn configured in code; `load()` runs in each worker, after the fork."""

    def __init__(self, settings: Settings, options: dict[str, Any]) -> None:
        self._settings = settings
        self._options = options
        self._bot: Bot | None = None
        super().__init__()

    def load_config(self) -> None:
        for key, value in self._options.items():
            self.cfg.set(key, value)
        self.cfg.set("worker_exit", self._worker_exit)

    def load(self) -> Any:
        self._bot = build_bot(self._settings)
        settle_heap()
        return http_app(self._bot)

    def _worker_exit(self, server: Any, worker: Any) -> None:
        if self._bot is not None:
            self._bot.close()


def _settings() -> Settings:
    try:
        settings = load_settings()
    except SettingsError as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False)
        raise typer.Exit(2) from None
    configure_logging(fmt=settings.log_format, level=settings.log_level)
    return settings


def _fail(exc: Exception) -> typer.Exit:
    err.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False)
    return typer.Exit(1)


def serve(
    host: str = typer.Option("0.0.0.0", help="Address to listen on."),
    port: int = typer.Option(
        3000, min=1, max=65535, help="Port; Slack's Request URL is http(s)://HOST:PORT/slack/events."
    ),
    workers: int = typer.Option(1, min=1, help="gunicorn worker processes (prefer replicas; see --threads)."),
    threads: int = typer.Option(32, min=1, help="Threads per worker: concurrent Slack requests it can ack."),
    access_log: bool = typer.Option(False, help="Log every HTTP request."),
) -> None:
    """Serve the Slack bot over HTTP (/slack/events, /healthz, /livez, /metrics) on gunicorn."""
    settings = _settings()
    try:
        load_checked_policy(settings.policy_file)  # fail here, with the file's problems, not in a worker
        if settings.slack_bot_token is None or settings.slack_signing_secret is None:
            raise SettingsError("GPULEASE_SLACK_BOT_TOKEN and GPULEASE_SLACK_SIGNING_SECRET must be set")
        with store_errors(url=settings.database_url, doing="start on {store}"):
            require_current(settings.database_url)  # likewise: here, not in each gunicorn worker
        check_slack_token(settings)  # Bolt runs auth.test in each worker; a bad token ends here instead
    except (PolicyError, SettingsError) as exc:
        raise _fail(exc) from None
    options = {
        "bind": f"{host}:{port}",
        "workers": workers,
        "worker_class": "gthread",
        "threads": threads,
        # Slack gives up after 3 s; a request still running after 30 s is stuck, not slow.
        "timeout": 30,
        "graceful_timeout": 20,
        "accesslog": "-" if access_log else None,
        "errorlog": "-",
        "loglevel": settings.log_level.lower(),
        "proc_name": "gpulease-serve",
    }
    _Gunicorn(settings, options).run()


def socket(
    metrics_port: int = typer.Option(0, min=0, max=65535, help="Serve Prometheus /metrics on this port (0: off)."),
) -> None:
    """Connect to Slack over Socket Mode (no public URL needed; up to 10 replicas)."""
    from prometheus_client import start_http_server
    from slack_bolt.adapter.socket_mode import SocketModeHandler

    settings = _settings()
    try:
        if settings.slack_app_token is None:
            raise SettingsError("GPULEASE_SLACK_APP_TOKEN is not set (an xapp- token with connections:write)")
        if settings.slack_bot_token is not None:
            check_slack_token(settings)  # before Bolt's own auth.test, which would end in a traceback
        bot = build_bot(settings, socket_mode=True)
    except (PolicyError, SettingsError) as exc:
        raise _fail(exc) from None
    if metrics_port:
        start_http_server(metrics_port)
    settle_heap()
    try:
        SocketModeHandler(bot.app, settings.slack_app_token.get_secret_value()).start()
    finally:
        bot.close()
