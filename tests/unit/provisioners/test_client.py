"""The client factory: which source of configuration wins, retries off, a timeout on requests."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from config.policy import Cluster
from config.settings import Settings
from provisioners.kube import KubeApiClient, make_api_client, retry_policy


def kubeconfig(tmp_path: Path) -> Path:
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "one",
        "clusters": [
            {"name": "c1", "cluster": {"server": "https://one.example:6443"}},
            {"name": "c2", "cluster": {"server": "https://two.example:6443"}},
        ],
        "users": [{"name": "u", "user": {"token": "secret-token"}}],
        "contexts": [
            {"name": "one", "context": {"cluster": "c1", "user": "u"}},
            {"name": "two", "context": {"cluster": "c2", "user": "u"}},
        ],
    }))
    return path


def settings(**values) -> Settings:
    return Settings(_env_file=None, **values)


def test_api_url_gives_a_plain_client_with_retries_off_and_a_timeout() -> None:
    client = make_api_client(
        settings=settings(kube_api_url="http://127.0.0.1:8001/", kube_request_timeout=3.5)
    )
    assert isinstance(client, KubeApiClient)
    assert client.configuration.host == "http://127.0.0.1:8001"
    assert client.configuration.retries is False
    assert client.request_timeout == 3.5


def test_kubeconfig_current_context_and_named_context(tmp_path: Path) -> None:
    path = kubeconfig(tmp_path)
    current = make_api_client(settings=settings(kubeconfig=path))
    assert current.configuration.host == "https://one.example:6443"
    assert current.configuration.auth_settings()["BearerToken"]["value"] == "Bearer secret-token"
    assert current.configuration.retries is False
    named = make_api_client(settings=settings(kubeconfig=path, kube_context="two"))
    assert named.configuration.host == "https://two.example:6443"


def test_cluster_entry_wins_over_settings(tmp_path: Path) -> None:
    path = kubeconfig(tmp_path)
    by_context = make_api_client(
        settings=settings(kubeconfig=path, kube_api_url="http://127.0.0.1:1"),
        cluster=Cluster(name="prod", context="two"),
    )
    assert by_context.configuration.host == "https://two.example:6443"
    by_url = make_api_client(
        settings=settings(kubeconfig=path, kube_context="two"),
        cluster=Cluster(name="prod", api_url="http://10.0.0.1:8080"),
    )
    assert by_url.configuration.host == "http://10.0.0.1:8080"
    # A cluster entry with neither leaves the choice to the settings.
    plain = make_api_client(settings=settings(kube_api_url="http://127.0.0.1:2"), cluster=Cluster(name="x"))
    assert plain.configuration.host == "http://127.0.0.1:2"


def test_api_url_wins_over_in_cluster_and_kubeconfig(tmp_path: Path) -> None:
    client = make_api_client(
        settings=settings(
            kube_api_url="http://127.0.0.1:3", kube_in_cluster=True, kubeconfig=kubeconfig(tmp_path)
        )
    )
    assert client.configuration.host == "http://127.0.0.1:3"


def test_in_cluster_outside_a_pod_fails_loudly(tmp_path: Path) -> None:
    from kubernetes.config import ConfigException

    with pytest.raises(ConfigException):
        make_api_client(settings=settings(kube_in_cluster=True, kubeconfig=kubeconfig(tmp_path)))


def test_missing_kubeconfig_fails_loudly(tmp_path: Path) -> None:
    from kubernetes.config import ConfigException

    with pytest.raises(ConfigException):
        make_api_client(settings=settings(kubeconfig=tmp_path / "absent"))


def test_retry_policy_bounds_come_from_settings() -> None:
    policy = retry_policy(settings=settings(kube_retry_attempts=3, kube_retry_seconds=9.0), base_delay=0.01)
    assert (policy.attempts, policy.seconds, policy.base_delay) == (3, 9.0, 0.01)
