"""`gpulease doctor`: check that everything gpulease needs is there, and say how to fix what
is not — settings, policy, store, broker, cluster reachability and permissions, namespace
pinning (doctor_pinning.py), Slack, the GPU Operator and node labels.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from config.policy import Cluster, Policy, PolicyError
from config.settings import Settings, SettingsError, load_settings
from gpulease.doctor_pinning import probe_pinning
from gpulease.redact import hide_password
from gpulease.slack_check import SlackUnusable, check_slack_token
from gpulease.store_access import StoreUnusable, require_current, store_errors
from gpulease.wiring import load_checked_policy
from leases.capacity import assess_nodes, tier_specs
from leases.errors import InfrastructureError
from leases.inventory import read_inventory
from leases.store import head_revision
from provisioners.inventory import list_nodes_and_pods
from provisioners.kube.client import make_api_client, request
from provisioners.kube.retry import RetryPolicy
from provisioners.permissions import REQUIRED, Permission, bind_permission


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    fix: str | None = None
    skipped: bool = False
    cluster: str | None = None  # the policy's cluster a cluster check is about

    @property
    def label(self) -> str:
        """The check's name, with its cluster when it has one: "pinning (prod-a)"."""
        return f"{self.name} ({self.cluster})" if self.cluster else self.name


# Run once per cluster of the policy (once with the settings alone when the policy is invalid).
CLUSTER_CHECKS = ("cluster", "permissions", "pinning", "gpu nodes")


class Doctor:
    """Runs the checks in order; later checks are skipped when what they need failed."""

    def __init__(self, *, env_overrides: dict | None = None) -> None:
        self.checks: list[Check] = []
        self.settings: Settings | None = None
        self.policy: Policy | None = None
        self._overrides = env_overrides or {}

    def _add(self, name: str, fn: Callable[[], tuple[bool, str, str | None]], cluster: Cluster | None = None) -> bool:
        try:
            ok, detail, fix = fn()
        except Exception as exc:  # noqa: BLE001 - a check that crashes is a failed check, reported
            ok, detail, fix = False, f"{type(exc).__name__}: {exc}", None
        self.checks.append(Check(name, ok, detail, fix, cluster=cluster.name if cluster else None))
        return ok

    def _skip(self, name: str, why: str, cluster: Cluster | None = None) -> None:
        self.checks.append(Check(name, True, why, skipped=True, cluster=cluster.name if cluster else None))

    def run(self) -> list[Check]:
        """Run every check and return the results."""
        if not self._add("settings", self._settings):
            for name in ("policy", "database", "broker", *CLUSTER_CHECKS, "slack"):
                self._skip(name, "settings are invalid")
            return self.checks
        self._add("policy", self._policy)
        self._add("database", self._database)
        self._add("broker", self._broker)
        for cluster in self.policy.clusters if self.policy is not None else [None]:
            self._cluster_checks(cluster)
        self._add("slack", self._slack)
        return self.checks

    def _cluster_checks(self, cluster: Cluster | None) -> None:
        """Check one cluster of the policy (None: the one the settings name, the policy being invalid)."""
        if not self._add("cluster", partial(self._cluster, cluster), cluster):
            for name in CLUSTER_CHECKS[1:]:
                self._skip(name, "the cluster is unreachable", cluster)
            return
        self._add("permissions", partial(self._permissions, cluster), cluster)
        if cluster is None:
            self._skip("pinning", "the policy file is invalid")
            self._skip("gpu nodes", "the policy file is invalid")
            return
        self._pinning(cluster)
        self._add("gpu nodes", partial(self._gpu_nodes, cluster), cluster)

    # -- the checks ----------------------------------------------------------------------
    def _settings(self):
        try:
            self.settings = load_settings(**self._overrides)
        except SettingsError as exc:
            return False, str(exc), "set the variables named above (see README, Configuration)"
        return True, "GPULEASE_* settings are valid", None

    def _policy(self):
        try:
            self.policy = load_checked_policy(self.settings.policy_file)
        except PolicyError as exc:
            return False, str(exc), "fix the fields named above, then `gpulease policy check FILE`"
        p = self.policy
        return True, f"{self.settings.policy_file}: {len(p.tiers)} tiers, {len(p.teams)} teams", None

    def _database(self):
        # The same checks, in the same words, as `gpulease db current` and the services at start;
        # require_current also refuses a missing SQLite file rather than letting SQLite create it.
        url = self.settings.database_url
        try:
            with store_errors(url=url, doing="read the schema revision of {store}"):
                require_current(url)
        except StoreUnusable as exc:
            return False, exc.problem, exc.fix
        return True, f"reachable, schema at {head_revision()}", None

    def _broker(self):
        url = self.settings.broker_url
        if url.startswith("memory://"):
            return True, "in-memory broker (embedded default: workers run in this process)", None
        from kombu import Connection

        try:
            with Connection(url, connect_timeout=3) as conn:
                conn.ensure_connection(max_retries=1)
        except Exception as exc:  # noqa: BLE001 - any connection failure is the finding
            return False, f"cannot reach the broker at {hide_password(url)} (GPULEASE_BROKER_URL): {exc}", \
                "start Redis, or point GPULEASE_BROKER_URL at it"
        return True, f"reachable at {hide_password(url)}", None

    def _client(self, cluster: Cluster | None):
        return make_api_client(settings=self.settings, cluster=cluster)

    def _where(self, cluster: Cluster | None) -> str:
        """Name what says how to reach this cluster: the policy's entry, or the settings."""
        if cluster is not None and (cluster.api_url or cluster.context):
            index = self.policy.clusters.index(cluster)
            field = "api_url" if cluster.api_url else "context"
            return f"clusters[{index}].{field} in the policy file"
        return "GPULEASE_KUBE_API_URL / the kubeconfig context"

    def _cluster(self, cluster: Cluster | None):
        try:
            client = self._client(cluster)
        except Exception as exc:  # noqa: BLE001
            fix = "set GPULEASE_KUBE_API_URL, GPULEASE_KUBECONFIG/GPULEASE_KUBE_CONTEXT or GPULEASE_KUBE_IN_CLUSTER"
            if cluster is not None and cluster.context:
                fix = f"check {self._where(cluster)} and GPULEASE_KUBECONFIG"
            return False, f"cannot build a Kubernetes client: {exc}", fix
        try:
            version = RetryPolicy(attempts=2, seconds=5).call(request, client, "GET", "/version", what="get version")
        except InfrastructureError as exc:
            return False, f"the API server does not answer: {exc}", \
                f"check {self._where(cluster)} and the network"
        finally:
            client.close()
        return True, f"API server {version.get('gitVersion', '?')} reachable", None

    def _permissions(self, cluster: Cluster | None):
        client = self._client(cluster)
        needed: list[Permission] = list(REQUIRED)
        if self.policy is not None:
            needed.append(bind_permission(self.policy.identity.cluster_role))
        denied = []
        try:
            for perm in needed:
                for verb in perm.verbs:
                    attrs = {"group": perm.group, "resource": perm.resource, "verb": verb}
                    if perm.resource_names:
                        attrs["name"] = perm.resource_names[0]
                    review = request(client, "POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", body={
                        "apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
                        "spec": {"resourceAttributes": attrs},
                    })
                    if not (review.get("status") or {}).get("allowed"):
                        denied.append(f"{verb} {perm.resource}" + (f".{perm.group}" if perm.group else ""))
        finally:
            client.close()
        if denied:
            return False, f"not allowed: {', '.join(denied)}", \
                "grant them to gpulease's service account (deploy/base ClusterRole)"
        return True, f"all {sum(len(p.verbs) for p in needed)} required permissions granted", None

    def _pinning(self, cluster: Cluster) -> None:
        """Add the pinning probe's finding (it may report itself skipped, unlike _add's checks)."""
        client = self._client(cluster)
        try:
            found = probe_pinning(client, policy=self.policy, cluster=cluster.name,
                                  retry=RetryPolicy(attempts=2, seconds=10))
        except Exception as exc:  # noqa: BLE001 - a probe that crashes is a failed check, reported
            self.checks.append(Check("pinning", False, f"{type(exc).__name__}: {exc}", cluster=cluster.name))
            return
        finally:
            client.close()
        self.checks.append(Check("pinning", found.ok, found.detail, found.fix, found.skipped, cluster=cluster.name))

    def _gpu_nodes(self, cluster: Cluster):
        client = self._client(cluster)
        try:
            nodes, pods = list_nodes_and_pods(client, retry=RetryPolicy(attempts=2, seconds=10))
        finally:
            client.close()
        readings = read_inventory(nodes, pods)
        gpu = [r for r in readings if r.product]
        if not gpu:
            return False, "no node carries nvidia.com/gpu.product", \
                "install the NVIDIA GPU Operator (with GPU Feature Discovery) on the GPU nodes"
        if not any("nvidia.com/mig.config.state" in (n["metadata"].get("labels") or {}) for n in nodes):
            problems = ["no node reports nvidia.com/mig.config.state: is the GPU Operator's MIG Manager running?"]
        else:
            problems = []
        assessed = assess_nodes(inventory=[r.state for r in readings], tiers=tier_specs(self.policy))
        serving = {a.tier for a in assessed if a.counted}
        # A tier with no node is fine with elastic pools: an idle node moves to it on demand.
        missing = [t.name for t in self.policy.tiers if t.name not in serving]
        broken = [f"{a.node.name} ({a.reason})" for a in assessed if a.node.gpu_model and a.tier and not a.sound]
        if broken:
            problems.append(f"nodes not serving their tier: {'; '.join(broken)}")
        if problems:
            return False, "; ".join(problems), \
                "label nodes with gpulease.io/tier=<tier> and set their nvidia.com/mig.config (see `gpulease inventory`)"
        empty = f"; no node serves {', '.join(missing)} yet (nodes move there on demand)" if missing else ""
        return True, f"{len(gpu)} GPU nodes serving {len(serving)} tiers{empty}", None

    def _slack(self):
        if self.settings.slack_bot_token is None:
            return True, "no GPULEASE_SLACK_BOT_TOKEN: notifications go to the log", None
        try:
            auth = check_slack_token(self.settings)
        except SlackUnusable as exc:
            return False, exc.problem, exc.fix
        if self.settings.slack_signing_secret is None:
            return False, "GPULEASE_SLACK_SIGNING_SECRET is not set", "copy the app's signing secret into it"
        return True, f"auth.test ok as {auth.get('user')} in {auth.get('team')}", None
