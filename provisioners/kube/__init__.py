"""The Kubernetes client of the platform: one factory, one raw request helper, one retry policy.

Every call the provisioners make goes through `RetryPolicy.call`, which retries only what is
transient, within bounds from settings, and turns refusals into `KubeApiError`s.

May import leases and config. Imported by provisioners (and workflows through them).
"""

from provisioners.kube.client import (
    APPLY_PATCH,
    JSON,
    MERGE_PATCH,
    KubeApiClient,
    api_client_for,
    make_api_client,
    request,
)
from provisioners.kube.retry import (
    KubeAlreadyExists,
    KubeApiError,
    KubeNotFound,
    RetryPolicy,
    is_transient,
    retry_after,
    retry_policy,
)

__all__ = [
    "APPLY_PATCH",
    "JSON",
    "MERGE_PATCH",
    "KubeAlreadyExists",
    "KubeApiClient",
    "KubeApiError",
    "KubeNotFound",
    "RetryPolicy",
    "api_client_for",
    "is_transient",
    "make_api_client",
    "request",
    "retry_after",
    "retry_policy",
]
