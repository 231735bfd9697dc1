"""The Kubernetes API client factory, and one raw JSON request helper.

Which cluster and credentials, in order of precedence (first match wins):
1. the policy's cluster entry: its `api_url` (a plain URL, no credentials), else its kubeconfig
   `context`, read from settings `kubeconfig` (default ~/.kube/config);
2. settings `kube_api_url`: a plain URL, no credentials (how the embedded default reaches the
   sandbox API server);
3. the pod's service account, when settings `kube_in_cluster` is true;
4. the kubeconfig file with settings `kube_context` (None: the file's current context).
A cluster entry comes first because a policy with several clusters must reach each one.

The client's own urllib3 retries are off (`configuration.retries = False`): the retry policy
in provisioners.kube.retry is the only layer that retries, so requests counted at the server
are exactly the attempts it made. Every request carries a timeout (`kube_request_timeout`),
because the generated client otherwise waits forever on a stalled server.

Part of provisioners.kube; imported by provisioners.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from kubernetes import config as kube_config
from kubernetes.client import ApiClient, Configuration
from kubernetes.client.exceptions import ApiException

from config.policy import Cluster
from config.settings import Settings

JSON = "application/json"
APPLY_PATCH = "application/apply-patch+yaml"
MERGE_PATCH = "application/merge-patch+json"


class KubeApiClient(ApiClient):
    """An ApiClient whose every request has a timeout unless the caller passes its own."""

    def __init__(self, configuration: Configuration, *, request_timeout: float) -> None:
        super().__init__(configuration)
        self.request_timeout = request_timeout

    def call_api(
        self,
        method: str,
        url: str,
        header_params: dict[str, str] | None = None,
        body: Any = None,
        post_params: Any = None,
        _request_timeout: Any = None,
    ) -> Any:
        """Send one request, with the client's default timeout when none is given."""
        return super().call_api(
            method,
            url,
            header_params=header_params,
            body=body,
            post_params=post_params,
            _request_timeout=_request_timeout if _request_timeout is not None else self.request_timeout,
        )


def make_api_client(*, settings: Settings, cluster: Cluster | None = None) -> KubeApiClient:
    """Build an API client for a cluster from settings and the policy's cluster entry."""
    configuration = Configuration()
    kubeconfig = str(settings.kubeconfig or Path.home() / ".kube" / "config")
    if cluster is not None and cluster.api_url:
        configuration.host = cluster.api_url.rstrip("/")
    elif cluster is not None and cluster.context:
        kube_config.load_kube_config(
            config_file=kubeconfig,
            context=cluster.context,
            client_configuration=configuration,
            persist_config=False,
        )
    elif settings.kube_api_url:
        configuration.host = settings.kube_api_url.rstrip("/")
    elif settings.kube_in_cluster:
        kube_config.load_incluster_config(client_configuration=configuration)
    else:
        kube_config.load_kube_config(
            config_file=kubeconfig,
            context=settings.kube_context,
            client_configuration=configuration,
            persist_config=False,
        )
    return api_client_for(configuration, request_timeout=settings.kube_request_timeout)


def api_client_for(configuration: Configuration, *, request_timeout: float) -> KubeApiClient:
    """Wrap a loaded Configuration in a client with urllib3 retries off and a timeout."""
    configuration.retries = False
    return KubeApiClient(configuration, request_timeout=request_timeout)


def request(
    api_client: ApiClient,
    method: str,
    path: str,
    *,
    query: Iterable[tuple[str, str]] = (),
    body: Any = None,
    content_type: str | None = None,
) -> dict[str, Any]:
    """Send one request to an API path and return the decoded JSON body (ApiException on error)."""
    headers = {"Accept": JSON}
    if content_type:
        headers["Content-Type"] = content_type
    elif body is not None:
        headers["Content-Type"] = JSON
    method, url, headers, body, post_params = api_client.param_serialize(
        method=method,
        resource_path=path,
        query_params=list(query),
        header_params=headers,
        body=body,
        auth_settings=["BearerToken"],
    )
    response = api_client.call_api(method, url, header_params=headers, body=body, post_params=post_params)
    response.read()
    text = response.data.decode("utf-8") if response.data else ""
    if not 200 <= response.status <= 299:
        # from_response raises the status-specific subclass (NotFoundException, ...).
        raise ApiException.from_response(http_resp=response, body=text, data=None)
    return json.loads(text) if text else {}
