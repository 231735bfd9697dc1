"""The HTTP face of the bot as one WSGI application: Slack at /slack/events, a health check
at /healthz and Prometheus metrics at /metrics.

Served by gunicorn in `gpulease serve`, and by a threaded wsgiref server in tests. Any
replica may receive any request: no state lives here.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import make_wsgi_app
from slack_bolt import App
from slack_bolt.adapter.wsgi import SlackRequestHandler

from .metrics import HTTP_SECONDS

EVENTS_PATH = "/slack/events"
Health = Callable[[], dict[str, Any]]


def wsgi_app(app: App, *, health: Health | None = None) -> Callable[..., Iterable[bytes]]:
    """Return the WSGI application routing to Bolt, the health check and the metrics."""
    slack = SlackRequestHandler(app, path=EVENTS_PATH)
    metrics = make_wsgi_app()

    def healthz(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        checks = health() if health else {}
        ok = all(v == "ok" for v in checks.values())
        body = json.dumps({"status": "ok" if ok else "failing", "checks": checks}).encode()
        start_response("200 OK" if ok else "503 Service Unavailable",
                       [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]

    def not_found(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        start_response("404 Not Found", [("Content-Type", "text/plain"), ("Content-Length", "9")])
        return [b"not found"]

    routes = {EVENTS_PATH: slack, "/healthz": healthz, "/metrics": metrics}

    def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO") or "/"
        handler = routes.get(path, not_found)
        started = time.perf_counter()
        status: list[str] = ["500"]

        def recording_start_response(status_line: str, headers: list, exc_info: Any = None) -> Any:
            status[0] = status_line.split(" ", 1)[0]
            return start_response(status_line, headers, exc_info) if exc_info else start_response(status_line, headers)

        try:
            return handler(environ, recording_start_response)
        finally:
            label = path if path in routes else "other"
            HTTP_SECONDS.labels(label, status[0]).observe(time.perf_counter() - started)

    return application
