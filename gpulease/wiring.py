"""Build the pieces the services share from settings: the checked policy, the store, the
clusters' API clients and the workflow runtime.

The composition root; only gpulease/ modules import this.
"""

from __future__ import annotations

import threading
from pathlib import Path

from kubernetes.client import ApiClient
from slack_sdk import WebClient

from bot.client import make_client
from bot.notifier import SlackNotifier
from config.policy import Policy, load_policy
from config.settings import Settings
from gpulease.store_access import require_current, store_errors
from leases.ports import Notifier
from leases.records import ensure_team
from leases.store import make_engine, session_scope
from leases.tiers import check_against_catalog
from provisioners.kube.client import make_api_client
from provisioners.kube.retry import retry_policy
from workflows.notify import LoggingNotifier
from workflows.runtime import Runtime, utc_now


def load_checked_policy(path: str | Path) -> Policy:
    """Load a policy file and check its tiers against the GPU catalog (PolicyError if bad)."""
    return check_against_catalog(load_policy(path), source=str(path))


class KubeClients:
    """One API client per cluster, made on first use (each holds a connection pool)."""

    def __init__(self, settings: Settings, policy: Policy) -> None:
        self._settings = settings
        self._policy = policy
        self._clients: dict[str, ApiClient] = {}
        self._lock = threading.Lock()

    def __call__(self, cluster: str) -> ApiClient:
        with self._lock:
            client = self._clients.get(cluster)
            if client is None:
                client = make_api_client(settings=self._settings, cluster=self._policy.cluster(cluster))
                self._clients[cluster] = client
            return client

    def reset(self) -> None:
        """Forget the clients (after a fork: connection pools must not be shared)."""
        with self._lock:
            self._clients.clear()


def make_notifier(settings: Settings, policy: Policy, *, client: WebClient | None = None) -> Notifier:
    """Return the Slack notifier when a bot token is set (sharing `client` if given), else the log."""
    if settings.slack_bot_token is None:
        return LoggingNotifier()
    client = client or make_client(settings.slack_bot_token.get_secret_value(), base_url=settings.slack_api_url)
    return SlackNotifier(client, approvals_channel=policy.approvals.channel, admins=policy.admins.users)


def build_runtime(
    settings: Settings, *, policy: Policy | None = None, notifier: Notifier | None = None, clock=utc_now
) -> Runtime:
    """Build the workflow runtime from settings (and optionally a policy and notifier).

    StoreUnusable (a SettingsError) when the store is missing, unreachable or not current.
    """
    policy = policy or load_checked_policy(settings.policy_file)
    with store_errors(url=settings.database_url, doing="start on {store}"):
        require_current(settings.database_url)
        engine = make_engine(settings.database_url)
        with session_scope(engine) as session:
            now = clock()
            for team in policy.teams:
                ensure_team(session, name=team.name, now=now)
    return Runtime(
        engine=engine,
        policy=policy,
        notifier=notifier or make_notifier(settings, policy),
        kube=KubeClients(settings, policy),
        retry=retry_policy(settings=settings),
        clock=clock,
        gitops_dir=settings.gitops_dir,
        export_dir=settings.export_dir,
        prometheus_url=settings.prometheus_url,
    )
