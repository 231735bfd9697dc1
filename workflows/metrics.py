"""Prometheus metrics of the workflow steps: how long each takes and how it ends."""

from prometheus_client import Counter, Histogram

STEP_SECONDS = Histogram(
    "gpulease_step_seconds", "Time a workflow step took, by step.", ["step"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
STEP_OUTCOMES = Counter(
    "gpulease_step_outcomes_total", "Workflow steps by how they ended (ok, retried, refused, failed).",
    ["step", "outcome"],
)
NOTIFY_FAILURES = Counter(
    "gpulease_notify_failures_total", "Notifications that could not be delivered (Slack API errors), by target.",
    ["target", "error"],
)
