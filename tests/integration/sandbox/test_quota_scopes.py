"""Scoped ResourceQuotas: a quota with a scope selector counts and limits only the pods in its
scope, refuses the others' way in with the real wording, and bad scopes are 422 Invalid."""

from __future__ import annotations

import json

import pytest
from kubernetes.client.rest import ApiException

from .waiting import wait_until

CRITICAL = ["system-node-critical", "system-cluster-critical"]


def critical_quota(name: str = "no-critical") -> dict:
    return {
        "metadata": {"name": name},
        "spec": {
            "hard": {"pods": "0"},
            "scopeSelector": {
                "matchExpressions": [{"scopeName": "PriorityClass", "operator": "In", "values": CRITICAL}]
            },
        },
    }


def pod(name: str, **spec) -> dict:
    return {"metadata": {"name": name}, "spec": {"containers": [{"name": "c", "image": "busybox"}], **spec}}


def message(err: pytest.ExceptionInfo) -> str:
    return json.loads(err.value.body)["message"]


def test_priority_class_scope_refuses_only_pods_in_scope(core):
    core.create_namespace({"metadata": {"name": "tenant"}})
    core.create_namespaced_resource_quota("tenant", critical_quota())
    core.create_namespaced_resource_quota("tenant", {"metadata": {"name": "all"}, "spec": {"hard": {"pods": "5"}}})
    for priority_class in CRITICAL:
        with pytest.raises(ApiException) as err:
            core.create_namespaced_pod("tenant", pod("preempter", priorityClassName=priority_class))
        assert err.value.status == 403
        assert message(err) == (
            'pods "preempter" is forbidden: exceeded quota: no-critical, requested: pods=1, used: pods=0, '
            "limited: pods=0"
        )
    core.create_namespaced_pod("tenant", pod("plain"))
    core.create_namespaced_pod("tenant", pod("low", priorityClassName="team-low"))
    # Each quota counts what is in its scope: the scoped one nothing, the plain one both pods.
    wait_until(lambda: core.read_namespaced_resource_quota("all", "tenant").status.used == {"pods": "2"})
    assert core.read_namespaced_resource_quota("no-critical", "tenant").status.used == {"pods": "0"}


def test_scoped_quota_ignores_other_kinds_and_pods_out_of_scope(core):
    core.create_namespace({"metadata": {"name": "scoped"}})
    core.create_namespaced_resource_quota(
        "scoped",
        {"metadata": {"name": "best-effort"}, "spec": {"hard": {"pods": "1"}, "scopes": ["BestEffort"]}},
    )
    core.create_namespaced_pod("scoped", pod("a"))
    with pytest.raises(ApiException) as err:
        core.create_namespaced_pod("scoped", pod("b"))
    assert "exceeded quota: best-effort" in message(err)
    guaranteed = pod("c")
    guaranteed["spec"]["containers"][0]["resources"] = {"limits": {"cpu": "1", "memory": "1Gi"}}
    core.create_namespaced_pod("scoped", guaranteed)  # not BestEffort: out of scope
    core.create_namespaced_config_map("scoped", {"metadata": {"name": "cm"}})


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (
            {"hard": {"pods": "0"},
             "scopeSelector": {"matchExpressions": [{"scopeName": "PriorityClass", "operator": "In"}]}},
            "spec.scopeSelector.matchExpressions.values: Required value: must be at least one value when "
            "`operator` is 'In' or 'NotIn' for scope selector",
        ),
        (
            {"hard": {"pods": "0"},
             "scopeSelector": {"matchExpressions": [{"scopeName": "Priority", "operator": "Exists"}]}},
            'spec.scopeSelector.matchExpressions.scopeName: Invalid value: "Priority": unsupported scope',
        ),
        (
            {"hard": {"pods": "0"},
             "scopeSelector": {"matchExpressions": [{"scopeName": "BestEffort", "operator": "In",
                                                     "values": ["x"]}]}},
            'spec.scopeSelector.matchExpressions.operator: Invalid value: "In": must be \'Exist\' when '
            "scope is BestEffort",
        ),
        (
            {"hard": {"configmaps": "1"}, "scopes": ["Terminating"]},
            'spec.scopes: Invalid value: ["Terminating"]: unsupported scope applied to resource',
        ),
        (
            {"hard": {"pods": "1"}, "scopes": ["Terminating", "NotTerminating"]},
            'spec.scopes: Invalid value: ["NotTerminating", "Terminating"]: conflicting scopes',
        ),
    ],
    ids=["in-without-values", "unknown-scope", "operator-for-best-effort", "scope-on-configmaps", "conflicting"],
)
def test_invalid_scopes_are_refused(core, spec, expected):
    core.create_namespace({"metadata": {"name": "bad"}})
    with pytest.raises(ApiException) as err:
        core.create_namespaced_resource_quota("bad", {"metadata": {"name": "q"}, "spec": spec})
    assert err.value.status == 422
    assert message(err) == f'ResourceQuota "q" is invalid: {expected}'
