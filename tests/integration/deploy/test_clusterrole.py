"""The ClusterRole in deploy/ holds exactly what the product's code uses on a cluster.

The permissions are derived, not listed by hand: the product's real code paths run against
the sandbox API server — a lease bundle provisioned, repaired and torn down with both pinning
mechanisms, the inventory read, nodes moved between tiers through the GPU Operator (and
rolled back), drained and given back, the reconciler, the export before reclaim, a failed
provisioning's compensation — and every request the server logged is turned into the RBAC
verb it needs (see rbac.py). Then every ClusterRole rendered from each overlay must grant
that set, and nothing else, without wildcards.

`gpulease doctor` runs against the same server too: its SelfSubjectAccessReviews need
`authorization.k8s.io selfsubjectaccessreviews create`. Its `GET /version` is a non-resource
URL that every authenticated user may read (system:public-info-viewer), so it needs no rule.
Its pinning probe creates a pod as a dry run, which needs `create pods`: the one permission
the role leaves out on purpose (DOCTOR_ONLY), since creating pods is no part of provisioning
and would let a stolen worker token run anything anywhere. Refused it, the probe reports
pinning unverified and asks for an administrator's kubeconfig.

Two permissions do not show as requests of their own. `create` on every kind the code writes
with server-side apply: an apply is a PATCH, but the API server also checks `create` when the
object does not exist yet (the sandbox does too). And `bind` on the ClusterRole the lease
RoleBindings refer to, read from the RoleBinding bodies the code sent. Without it the API
server refuses a binding to a role whose permissions the writer does not hold itself (the
RBAC escalation check, which the sandbox does not simulate).

The same set must be provisioners/permissions.py's REQUIRED (plus `bind` on the policy's
cluster_role), the list `gpulease doctor` checks.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from config.policy import PinningMechanism, load_policy, parse_policy
from config.settings import EXAMPLE_POLICY, Settings
from gpulease.doctor import Doctor
from leases.states import LeaseState
from provisioners.bundle import apply, spec_from, teardown
from provisioners.inventory import read_cluster
from provisioners.kube import RetryPolicy, make_api_client
from provisioners.permissions import REQUIRED, bind_permission
from sandbox.kube import KubeSandbox
from tests.integration.deploy.conftest import TARGETS, documents
from tests.integration.deploy.rbac import (
    RBAC_GROUP,
    Permission,
    apply_permissions,
    bind_permissions,
    granted,
    permission_of,
    request_info,
)
from tests.integration.workflows.conftest import clock, make_runtime, roomy_policy  # noqa: F401 (fixtures)
from tests.integration.workflows.test_pipeline import request, state_of
from workflows import api
from workflows.reconcile import reconcile_cluster
from workflows.steps import extending, moving, reclaiming

# Non-resource URLs the code may read without a rule: every authenticated user may.
PUBLIC_URLS = {"/version"}
DOCTOR = "gpulease doctor"
# Used by doctor's pinning probe only, and deliberately not granted (see the docstring).
DOCTOR_ONLY = {Permission("", "pods", "create")}
MAP = PinningMechanism.MUTATING_ADMISSION_POLICY
NSA = PinningMechanism.NODE_SELECTOR_ANNOTATIONS


@pytest.fixture
def db_url(tmp_path) -> str:
    """SQLite only: what the code asks of the cluster does not depend on the store."""
    return f"sqlite:///{tmp_path / 'gpulease.db'}"


@pytest.fixture
def kube() -> Iterator[KubeSandbox]:
    """The default sandbox cluster: real GFD labels and the GPU Operator simulation."""
    with KubeSandbox(port=0, operator_delay=0.0, namespace_delay=0.0) as sandbox:
        yield sandbox


class Recorder:
    """Attributes the server's logged requests to the scenario that made them."""

    def __init__(self, kube: KubeSandbox) -> None:
        self.kube = kube
        self.seen = 0
        self.used: dict[Permission, set[str]] = defaultdict(set)
        self.urls: dict[str, set[str]] = defaultdict(set)

    def scenario(self, name: str, run: Callable[[], object]) -> None:
        run()
        log = self.kube.requests()
        new, self.seen = log[self.seen :], len(log)
        assert new, f"scenario {name!r} made no request: it no longer drives the code it names"
        for r in new:
            try:
                self.used[permission_of(r.method, r.path, r.query)].add(name)
            except ValueError:
                self.urls[r.path].add(name)
                continue
            for extra in apply_permissions(r.method, r.path, r.content_type or "") | bind_permissions(
                r.method, r.path, r.json()
            ):
                self.used[extra].add(name)


def _policy(pinning: PinningMechanism):
    """The example policy, roomy quotas, whole leases of up to 8 units, the given pinning."""
    base = roomy_policy()
    tiers = [t.model_copy(update={"max_units": 8}) for t in base.tiers]
    return base.model_copy(update={"tiers": tiers, "pinning": pinning})


def _spec(policy, pinning: PinningMechanism, namespace: str, lease_id: str):
    return spec_from(
        policy.model_copy(update={"pinning": pinning}),
        lease_id=lease_id, namespace=namespace, cluster="sandbox", tier="h100-1g", team="ml-research",
        requester="U0ALICE", email="alice@example.com", units=1,
        expires_at=datetime(2030, 1, 1, tzinfo=UTC),
    )


def _provisioners(kube: KubeSandbox, policy) -> Callable[[], None]:
    """provisioners.bundle and inventory called directly, as tests/integration/provisioners do."""

    def run() -> None:
        retry = RetryPolicy(attempts=4, seconds=10, base_delay=0.01, max_delay=0.05)
        settings = Settings(_env_file=None, kube_api_url=kube.url, kube_request_timeout=5)
        with make_api_client(settings=settings) as api_client:
            specs = [_spec(policy, NSA, "rbac-nsa", "a" * 32), _spec(policy, MAP, "rbac-map", "b" * 32)]
            for spec in specs:
                apply(api_client, spec, retry=retry)
                apply(api_client, spec, retry=retry)  # unchanged: reads, re-applies
            # A binding left with another role: roleRef is immutable, so apply replaces it.
            repair = _spec(policy, NSA, "rbac-repair", "c" * 32)
            kube.create("namespaces", {"metadata": {"name": repair.namespace, "labels": {
                "app.kubernetes.io/managed-by": "gpulease", "gpulease.io/lease": repair.lease_id}}})
            kube.create("rolebindings", {"metadata": {"name": repair.object_name, "namespace": repair.namespace},
                                         "subjects": [{"kind": "User", "name": "mallory",
                                                       "apiGroup": "rbac.authorization.k8s.io"}],
                                         "roleRef": {"apiGroup": "rbac.authorization.k8s.io",
                                                     "kind": "ClusterRole", "name": "admin"}},
                        group="rbac.authorization.k8s.io")
            apply(api_client, repair, retry=retry)
            assert kube.get("rolebindings", repair.object_name, namespace=repair.namespace,
                            group="rbac.authorization.k8s.io")["roleRef"]["name"] == "edit"
            assert read_cluster(api_client, retry=retry)
            for spec in [*specs, repair]:
                assert teardown(api_client, spec, timeout=10, poll=0.01, retry=retry)

    return run


def _lease(rt, *, tier: str, units: int, namespace: str) -> str:
    submitted = api.submit(request(tier=tier, units=units, namespace=namespace, duration=timedelta(hours=12)))
    if submitted.approval != "auto":
        approver = "U0APPROVER2" if tier == "h100-full" else "U0APPROVER1"
        api.decide(lease_id=submitted.lease_id, approver=approver, approve=True)
    rt.queue.drain()
    return submitted.lease_id


def test_derivation_maps_methods_and_paths_to_rbac_verbs() -> None:
    """The mapping itself, on requests whose RBAC attributes are known."""
    cases = {
        ("GET", "/api/v1/namespaces/ml-a", ""): Permission("", "namespaces", "get"),
        ("GET", "/api/v1/namespaces", ""): Permission("", "namespaces", "list"),
        ("GET", "/api/v1/pods", "watch=true"): Permission("", "pods", "watch"),
        ("POST", "/api/v1/namespaces", ""): Permission("", "namespaces", "create"),
        ("DELETE", "/api/v1/namespaces/ml-a", ""): Permission("", "namespaces", "delete"),
        ("PUT", "/api/v1/namespaces/ml-a/finalize", ""): Permission("", "namespaces/finalize", "update"),
        ("PATCH", "/api/v1/namespaces/ml-a/resourcequotas/q", ""): Permission("", "resourcequotas", "patch"),
        ("PATCH", "/api/v1/nodes/n1/status", ""): Permission("", "nodes/status", "patch"),
        ("DELETE", "/apis/rbac.authorization.k8s.io/v1/namespaces/ml-a/rolebindings", ""):
            Permission("rbac.authorization.k8s.io", "rolebindings", "deletecollection"),
        ("PATCH", "/apis/admissionregistration.k8s.io/v1/mutatingadmissionpolicies/p", ""):
            Permission("admissionregistration.k8s.io", "mutatingadmissionpolicies", "patch"),
    }
    for (method, path, query), expected in cases.items():
        params = dict(p.split("=") for p in query.split("&") if p)
        assert permission_of(method, path, {k: [v] for k, v in params.items()}) == expected, (method, path)
    assert request_info("/api/v1/namespaces/ml-a/pods/p").namespace == "ml-a"
    with pytest.raises(ValueError):
        permission_of("GET", "/apis")
    body = {"roleRef": {"kind": "ClusterRole", "name": "edit"}}
    path = "/apis/rbac.authorization.k8s.io/v1/namespaces/ml-a/rolebindings/b"
    assert bind_permissions("PATCH", path, body) == {
        Permission("rbac.authorization.k8s.io", "clusterroles", "bind", "edit")
    }
    assert bind_permissions("PATCH", "/api/v1/namespaces/ml-a/resourcequotas/q", body) == set()
    # An apply may create its object: the API server then checks `create` too.
    quota = "/api/v1/namespaces/ml-a/resourcequotas/q"
    assert apply_permissions("PATCH", quota, "application/apply-patch+yaml") == {
        Permission("", "resourcequotas", "create")
    }
    assert apply_permissions("PATCH", quota, "application/merge-patch+json") == set()
    assert apply_permissions("PATCH", "/api/v1/nodes/n1/status", "application/apply-patch+yaml") == set()


def test_granted_refuses_wildcards() -> None:
    with pytest.raises(ValueError, match="wildcard"):
        granted([{"apiGroups": [""], "resources": ["*"], "verbs": ["get"]}])
    with pytest.raises(ValueError, match="wildcard"):
        granted([{"apiGroups": [""], "resources": ["pods"], "verbs": ["*"]}])
    assert granted([{"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["clusterroles"],
                     "verbs": ["bind"], "resourceNames": ["edit"]}]) == {
        Permission("rbac.authorization.k8s.io", "clusterroles", "bind", "edit")
    }


def derive(kube: KubeSandbox, make_runtime, tmp_path: Path) -> Recorder:  # noqa: F811
    """Drive every code path that talks to a cluster; return the recorder of what each used."""
    rec = Recorder(kube)
    rec.scenario("bundle apply/repair/teardown, both pinnings; inventory", _provisioners(kube, _policy(NSA)))

    rt = make_runtime(policy=_policy(NSA), nodes=())
    leases: dict[str, str] = {}

    def pipeline() -> None:
        leases["small"] = _lease(rt, tier="h100-1g", units=1, namespace="rbac-small")
        leases["first"] = _lease(rt, tier="h100-full", units=8, namespace="rbac-full-a")
        assert state_of(rt, leases["first"]) is LeaseState.ACTIVE

    rec.scenario("placement (inventory) and provisioning", pipeline)

    def extension() -> None:
        result = extending.extend(rt, lease_id=leases["small"], actor="U0ALICE", by=timedelta(hours=2))
        assert result.outcome == "extended"
        rt.queue.drain()  # refresh: the namespace's expiry annotation follows

    rec.scenario("extension (bundle refreshed)", extension)

    def compensation() -> None:
        kube.add_fault("status", status=403, method="PATCH", path_regex=r".*/resourcequotas/.*", times=1)
        failed = _lease(rt, tier="h100-1g", units=1, namespace="rbac-denied")
        assert state_of(rt, failed) is LeaseState.FAILED

    rec.scenario("failed provisioning compensated", compensation)

    def node_move() -> None:
        # The whole-GPU pool is used up: an idle node moves through the GPU Operator.
        leases["moved"] = _lease(rt, tier="h100-full", units=8, namespace="rbac-full-b")
        assert state_of(rt, leases["moved"]) is LeaseState.ACTIVE

    rec.scenario("node move (cordon, reconfigure, relabel, uncordon)", node_move)

    def rollback() -> None:
        for node in ("gpu-h100-1g-0", "gpu-h100-1g-1", "gpu-h100-3g-0"):
            kube.set_faulty(node, True)
        waiting = _lease(rt, tier="h100-full", units=8, namespace="rbac-full-c")
        assert state_of(rt, waiting) is LeaseState.WAITLISTED

    rec.scenario("node move rolled back", rollback)

    def drains() -> None:
        moving.drain(rt, "sandbox", "gpu-l40s-0", "h100-full")
        moving.undrain(rt, "sandbox", "gpu-l40s-0")
        moving.drain(rt, "sandbox", "gpu-l40s-1", "")  # an admin's drain: cordon

    rec.scenario("drain and undrain", drains)

    def reconcile() -> None:
        report = reconcile_cluster(rt, "sandbox")
        assert report.repaired and not report.errors, report

    rec.scenario("reconciler (node-selector pinning)", reconcile)

    def export_and_reclaim() -> None:
        rt.export_dir = tmp_path / "export"
        reclaiming.start_reclaim(rt, lease_id=leases["small"], actor="U0ALICE", reason="done")
        rt.queue.drain()
        assert state_of(rt, leases["small"]) is LeaseState.RECLAIMED
        assert list(rt.export_dir.glob("*.json"))

    rec.scenario("export before reclaim, teardown", export_and_reclaim)

    map_rt = make_runtime(policy=_policy(MAP), nodes=())

    def map_pinning() -> None:
        lease = _lease(map_rt, tier="l40s-shared", units=1, namespace="rbac-map-lease")
        assert state_of(map_rt, lease) is LeaseState.ACTIVE
        report = reconcile_cluster(map_rt, "sandbox")
        assert not report.errors, report

    rec.scenario("mutating-admission-policy pinning: provisioning and reconciler", map_pinning)

    def doctor() -> None:
        checks = {c.name: c for c in Doctor(env_overrides={
            "database_url": str(map_rt.engine.url), "broker_url": "memory://", "kube_api_url": kube.url,
            "slack_bot_token": None, "policy_file": EXAMPLE_POLICY,
        }).run()}
        assert checks["permissions"].ok, checks["permissions"]

    rec.scenario(DOCTOR, doctor)
    return rec


def _listed(permissions) -> set[Permission]:
    """Expand provisioners.permissions entries (several verbs, optional names) into permissions."""
    return {Permission(p.group, p.resource, verb, name)
            for p in permissions for verb in p.verbs for name in (p.resource_names or ("",))}


def test_clusterrole_grants_exactly_what_the_code_uses(kube, make_runtime, tmp_path) -> None:  # noqa: F811
    rec = derive(kube, make_runtime, tmp_path)
    for p in DOCTOR_ONLY:
        assert rec.used[p] == {DOCTOR}, f"{p} is used by {sorted(rec.used[p])}, not only by doctor's probe"
    used = set(rec.used) - DOCTOR_ONLY
    derived = "\n".join(f"  {p}   <- {'; '.join(sorted(rec.used[p]))}" for p in sorted(used))
    unexpected_urls = sorted(set(rec.urls) - PUBLIC_URLS)
    assert not unexpected_urls, f"non-resource URLs need rules of their own: {unexpected_urls}"

    problems = []
    for target in TARGETS:
        [role] = [d for d in documents(target) if d["kind"] == "ClusterRole"]
        policy = load_policy_text(target)
        grants = granted(role["rules"])
        problems += [f"deploy/{target}: lacks {p} (used by: {'; '.join(sorted(rec.used[p]))})"
                     for p in sorted(used - grants)]
        problems += [f"deploy/{target}: grants {p}, which no code path uses" for p in sorted(grants - used)]
        # RoleBindings refer to the deployed policy's role, which may differ from the example's.
        if bind_of(policy) not in grants:
            problems.append(f"deploy/{target}: lacks {bind_of(policy)} for its policy's identity.cluster_role")
    listed = _listed(REQUIRED) | _listed([bind_permission(load_policy(EXAMPLE_POLICY).identity.cluster_role)])
    problems += [f"provisioners/permissions.py: lacks {p}" for p in sorted(used - listed)]
    problems += [f"provisioners/permissions.py: lists {p}, which no code path uses" for p in sorted(listed - used)]
    assert not problems, "\n".join(problems) + f"\nderived from the code:\n{derived}"


def bind_of(policy) -> Permission:
    return Permission(RBAC_GROUP, "clusterroles", "bind", policy.identity.cluster_role)


def load_policy_text(target: str):
    """Return the policy of the rendered gpulease-policy ConfigMap."""
    [text] = [d["data"]["policy.yaml"] for d in documents(target)
              if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith("gpulease-policy")]
    return parse_policy(yaml.safe_load(text))


@pytest.mark.parametrize("target", TARGETS)
def test_only_the_worker_holds_a_token_bound_to_the_clusterrole(target) -> None:
    docs = documents(target)
    [role] = [d for d in docs if d["kind"] == "ClusterRole"]
    [binding] = [d for d in docs if d["kind"] == "ClusterRoleBinding"]
    assert binding["roleRef"] == {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": role["metadata"]["name"]}
    [subject] = binding["subjects"]
    accounts = {(d["metadata"]["namespace"], d["metadata"]["name"]): d for d in docs if d["kind"] == "ServiceAccount"}
    assert subject["kind"] == "ServiceAccount" and (subject["namespace"], subject["name"]) in accounts
    holders = []
    for d in docs:
        if d["kind"] != "Deployment":
            continue
        pod = d["spec"]["template"]["spec"]
        account = accounts[(d["metadata"]["namespace"], pod.get("serviceAccountName", "default"))]
        mounted = pod.get("automountServiceAccountToken", account.get("automountServiceAccountToken", True))
        if mounted:
            holders.append((d["metadata"]["name"], pod.get("serviceAccountName")))
    assert holders == [("gpulease-worker", subject["name"])], f"pods holding an API token: {holders}"
