"""Runs over every cluster (the minute's waitlist wake-up, the reconciler) when one cluster's
API cannot be reached: the other clusters still get their turn, the failure is logged with
the cluster, and the run raises at the end so that its task is retried."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from kubernetes.client import RbacAuthorizationV1Api

from leases.errors import TemporaryError
from leases.states import LeaseState
from tests.integration.workflows.conftest import gpu_node, roomy_policy
from tests.integration.workflows.test_pipeline import approved, request, state_of
from workflows import api, sweeps
from workflows.reconcile import reconcile_all

DOWN = "aa-down"  # listed before the healthy cluster: it is met first


def _with_a_cluster_down(rt) -> None:
    """Make every client for cluster DOWN fail as an unreachable API server does."""
    healthy = rt.kube

    def kube_for(cluster: str):
        if cluster == DOWN:
            raise TemporaryError(f"list nodes on {DOWN}: connection refused", delay=7)
        return healthy(cluster)

    rt.kube = kube_for


def _two_clusters():
    policy = roomy_policy()
    down = policy.clusters[0].model_copy(update={"name": DOWN})
    return policy.model_copy(update={"clusters": [down, *policy.clusters]})


def test_waitlist_wakeup_places_on_the_healthy_cluster_when_another_is_down(make_runtime, kube, caplog):
    rt = make_runtime(policy=_two_clusters(), nodes=(("n-1g", "h100-1g", 1),))  # 7 units
    approved(rt, "U0APPROVER1", request(units=4, namespace="a", duration=timedelta(days=1), cluster="sandbox"))
    [waiting] = approved(rt, "U0APPROVER1", request(units=4, namespace="b", duration=timedelta(days=1), cluster="sandbox"))
    assert state_of(rt, waiting) is LeaseState.WAITLISTED
    kube.create("nodes", gpu_node("n-1g-2", "h100-1g", gpus=1))  # capacity arrives on "sandbox"
    _with_a_cluster_down(rt)
    with caplog.at_level(logging.ERROR, logger="workflows.sweeps"), pytest.raises(TemporaryError) as raised:
        sweeps.wake_waitlist(rt)  # what the beat runs every minute (no cluster named)
    rt.queue.drain()
    assert state_of(rt, waiting) is LeaseState.ACTIVE
    # Raised at the end, for the task to retry, naming the cluster and keeping its Retry-After.
    assert DOWN in str(raised.value) and "sandbox" not in str(raised.value)
    assert raised.value.delay == 7
    [logged] = [r for r in caplog.records if getattr(r, "event", "") == "waitlist.cluster_failed"]
    assert logged.cluster == DOWN
    assert "connection refused" in logged.getMessage() and "reachable" in logged.getMessage()


def test_reconcile_repairs_the_healthy_cluster_when_another_is_down(make_runtime, kube, caplog):
    rt = make_runtime(policy=_two_clusters())
    api.submit(request(cluster="sandbox"))
    rt.queue.drain()
    rb = kube.list("rolebindings", namespace="alice-nb", group="rbac.authorization.k8s.io")[0]
    RbacAuthorizationV1Api(rt.kube("sandbox")).delete_namespaced_role_binding(rb["metadata"]["name"], "alice-nb")
    _with_a_cluster_down(rt)
    with caplog.at_level(logging.ERROR, logger="workflows.sweeps"), pytest.raises(TemporaryError) as raised:
        reconcile_all(rt)
    assert kube.list("rolebindings", namespace="alice-nb", group="rbac.authorization.k8s.io")  # repaired
    assert DOWN in str(raised.value)
    [logged] = [r for r in caplog.records if getattr(r, "event", "") == "reconcile.cluster_failed"]
    assert logged.cluster == DOWN


def test_runs_over_healthy_clusters_raise_nothing(make_runtime, kube):
    rt = make_runtime(policy=roomy_policy())
    api.submit(request())
    rt.queue.drain()
    assert sweeps.wake_waitlist(rt) == []
    assert reconcile_all(rt)["repaired"] == 1
