"""The WSGI application: Slack at /slack/events, /healthz answering 503 when a check fails,
Prometheus /metrics, and nothing else."""

from __future__ import annotations

import json
from wsgiref.util import setup_testing_defaults

from slack_bolt import App

from bot.web import wsgi_app


def call(application, path: str, method: str = "GET") -> tuple[str, bytes]:
    environ: dict = {"PATH_INFO": path, "REQUEST_METHOD": method}
    setup_testing_defaults(environ)
    seen: list[str] = []
    body = b"".join(application(environ, lambda status, headers, exc_info=None: seen.append(status)))
    return seen[0], body


def app() -> App:
    return App(token="xoxb-unit", signing_secret="secret", token_verification_enabled=False)


def test_health_reports_each_check():
    healthy = wsgi_app(app(), health=lambda: {"store": "ok"})
    status, body = call(healthy, "/healthz")
    assert status == "200 OK" and json.loads(body) == {"status": "ok", "checks": {"store": "ok"}}
    failing = wsgi_app(app(), health=lambda: {"store": "OperationalError: no such file"})
    status, body = call(failing, "/healthz")
    assert status.startswith("503") and json.loads(body)["status"] == "failing"


def test_metrics_and_unknown_paths():
    application = wsgi_app(app())
    call(application, "/healthz")
    status, body = call(application, "/metrics")
    assert status == "200 OK" and b'gpulease_http_request_seconds_count{path="/healthz",status="200"}' in body
    assert call(application, "/admin")[0].startswith("404")


def test_unsigned_slack_requests_are_refused():
    status, _ = call(wsgi_app(app()), "/slack/events", method="POST")
    assert status.startswith("401")
