"""A tier taken out of the policy file while leases of it run: those leases are still reclaimed
(teardown needs only the namespace and the lease), and the reconciler skips them, tells the
admins, and goes on with the other leases of the cluster."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
import yaml
from kubernetes.client import CoreV1Api

from config.policy import parse_policy
from config.settings import EXAMPLE_POLICY
from leases.capacity import tier_specs
from leases.errors import PermanentError
from leases.records import get_lease
from leases.reservations import held_reservation
from leases.states import LeaseState
from leases.store import session_scope
from tests.integration.workflows.test_pipeline import kinds, request, state_of
from workflows import api, reconcile, sweeps
from workflows.steps.provisioning import bundle_spec


def _without(tier: str):
    """The example policy as an operator redeploys it with `tier` taken out."""
    data = yaml.safe_load(EXAMPLE_POLICY.read_text())
    data["tiers"] = [t for t in data["tiers"] if t["name"] != tier]
    for team in data["teams"]:
        team["quota"]["tiers"].pop(tier, None)
    return parse_policy(data)


def _bob_on_3g(rt) -> str:
    s = api.submit(request(tier="h100-3g", namespace="bob-3g", requester="U0BOB", duration=timedelta(hours=8)))
    api.decide(lease_id=s.lease_id, approver="U0APPROVER1", approve=True)
    rt.queue.drain()
    assert state_of(rt, s.lease_id) is LeaseState.ACTIVE
    return s.lease_id


def _drop_3g(rt) -> None:
    rt.policy = _without("h100-3g")  # the workers restart with the new policy
    rt.tiers = tier_specs(rt.policy)


def test_a_lease_whose_tier_left_the_policy_is_reclaimed_when_it_expires(make_runtime, clock, kube, tmp_path):
    rt = make_runtime(export_dir=tmp_path / "exports")
    lease_id = _bob_on_3g(rt)
    _drop_3g(rt)
    clock.advance(timedelta(hours=9))
    sweeps.sweep(rt)
    rt.queue.drain()
    assert state_of(rt, lease_id) is LeaseState.RECLAIMED
    with session_scope(rt.engine) as session:
        assert held_reservation(session, lease_id=lease_id) is None
    assert kube.get("namespaces", "bob-3g") is None
    [export] = list((tmp_path / "exports").glob("*.json"))
    assert {item["kind"] for item in json.loads(export.read_text())["items"]} >= {"Namespace", "ResourceQuota"}
    assert kinds(rt, "requester")[-1] == "lease.reclaimed"


def test_reconcile_skips_a_lease_whose_tier_left_the_policy_tells_the_admins_once_and_repairs_the_rest(
    make_runtime, kube
):
    rt = make_runtime()
    _bob_on_3g(rt)
    api.submit(request())  # alice-nb on h100-1g, still in the policy
    rt.queue.drain()
    quota = "gpulease-" + api.lease_by_namespace("alice-nb").id
    CoreV1Api(rt.kube("sandbox")).patch_namespaced_resource_quota(  # drift, by hand
        quota, "alice-nb", {"spec": {"hard": {"requests.nvidia.com/gpu": "50"}}}
    )
    _drop_3g(rt)

    report = reconcile.reconcile_cluster(rt, "sandbox")
    assert report.unknown_tier == ["bob-3g"]
    assert report.repaired == ["alice-nb"] and report.errors == [] and report.orphan_namespaces == []
    assert kube.get("resourcequotas", quota, namespace="alice-nb")["spec"]["hard"]["requests.nvidia.com/gpu"] == "1"
    assert kube.get("namespaces", "bob-3g") is not None  # left as it is
    assert reconcile.reconcile_all(rt)["unknown_tier"] == 1  # again: reported, not told twice
    rt.queue.drain()
    assert kinds(rt, "admins") == ["admin.unknown_tier"]
    told = rt.notifier.sent[-1].notice
    assert "bob-3g" in told.text and "h100-3g" in told.text and "/gpu-admin revoke bob-3g" in told.text


def test_a_lease_whose_tier_left_the_policy_has_a_spec_for_removal_and_none_for_an_apply(make_runtime):
    rt = make_runtime()
    lease_id = _bob_on_3g(rt)
    _drop_3g(rt)
    with session_scope(rt.engine) as session:
        lease = get_lease(session, lease_id=lease_id)
        spec = bundle_spec(rt, lease, for_removal=True)
        assert (spec.namespace, spec.lease_id, spec.tier, spec.units) == ("bob-3g", lease_id, "h100-3g", 1)
        with pytest.raises(PermanentError, match="tier h100-3g is no longer in the policy.*bob-3g.*put h100-3g back"):
            bundle_spec(rt, lease)
