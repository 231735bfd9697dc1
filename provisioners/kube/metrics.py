"""Prometheus metrics of the Kubernetes API calls: retries and failures by verb and status."""

from prometheus_client import Counter

KUBE_RETRIES = Counter(
    "gpulease_kube_retries_total", "Kubernetes API calls retried after a transient error.", ["verb", "status"]
)
KUBE_FAILURES = Counter(
    "gpulease_kube_failures_total", "Kubernetes API calls that failed for good (refused or out of retries).",
    ["verb", "status"],
)
