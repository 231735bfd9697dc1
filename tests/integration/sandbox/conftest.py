"""Fixtures: a fresh sandbox API server per test and official-client handles to it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kubernetes import client
from kubernetes.dynamic import DynamicClient

from sandbox.kube import KubeSandbox


@pytest.fixture
def kube() -> Iterator[KubeSandbox]:
    with KubeSandbox(port=0, operator_delay=0.0, namespace_delay=0.0) as sandbox:
        yield sandbox


@pytest.fixture
def api_client(kube: KubeSandbox) -> Iterator[client.ApiClient]:
    configuration = client.Configuration(host=kube.url)
    configuration.retries = False  # only the code under test may retry
    with client.ApiClient(configuration) as api:
        yield api


@pytest.fixture
def core(api_client: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(api_client)


@pytest.fixture
def rbac(api_client: client.ApiClient) -> client.RbacAuthorizationV1Api:
    return client.RbacAuthorizationV1Api(api_client)


@pytest.fixture
def dynamic(api_client: client.ApiClient, tmp_path) -> DynamicClient:
    return DynamicClient(api_client, cache_file=str(tmp_path / "discovery.json"))
