"""Prometheus metrics of the Slack front end, served at /metrics by bot.web.

Per process: run one process per replica (threads for concurrency), so each scrape target
is one replica. Imported by bot modules.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prometheus_client import Counter, Histogram
from slack_bolt import App

SLACK_REQUESTS = Counter(
    "gpulease_slack_requests_total", "Requests from Slack that passed verification, by payload type.", ["type"]
)
HTTP_SECONDS = Histogram(
    "gpulease_http_request_seconds",
    "Time to answer an HTTP request (for /slack/events: the ack Slack waits for, limit 3 s).",
    ["path", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0),
)
LISTENER_ERRORS = Counter(
    "gpulease_slack_listener_errors_total", "Listener failures turned into user messages, by error type.", ["error"]
)
NOTICES = Counter("gpulease_slack_notices_total", "Notices delivered to Slack, by kind.", ["kind"])
NOTICES_DROPPED = Counter(
    "gpulease_slack_notices_dropped_total",
    "Approval-card updates Slack refused for good (logged as notify.card_dropped), by kind and Slack error.",
    ["kind", "error"],
)


def payload_type(body: dict[str, Any]) -> str:
    """Return a short label for what Slack sent."""
    if "command" in body:
        return "command"
    if body.get("type") == "event_callback":
        return "event:" + str((body.get("event") or {}).get("type"))
    return str(body.get("type") or "unknown")


def register(app: App) -> None:
    """Count every verified request by type (a Bolt global middleware)."""

    @app.middleware
    def count(body: dict[str, Any], next: Callable[[], Any]) -> Any:  # noqa: A002 - Bolt's name
        SLACK_REQUESTS.labels(payload_type(body)).inc()
        return next()
