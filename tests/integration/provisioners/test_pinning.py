"""What a user sees in a provisioned namespace: ordinary pod YAML asking for one
`nvidia.com/gpu` lands on a node of the lease's tier, and a pod beyond the quota is refused
with the quota message, for both pinning mechanisms; a pod asking for a critical system
priority class is refused."""

from __future__ import annotations

import json

import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from config.policy import PinningMechanism, Policy
from provisioners.bundle import apply
from provisioners.kube import request
from sandbox.kube import KubeSandbox
from tests.integration.provisioners.conftest import make_spec, wait_until

# Unchanged user YAML: no nodeSelector, no tolerations, no requests; only the GPU limit.
USER_POD = yaml.safe_load("""
apiVersion: v1
kind: Pod
metadata:
  generateName: train-
spec:
  restartPolicy: Never
  containers:
    - name: train
      image: nvcr.io/nvidia/pytorch:24.05-py3
      resources:
        limits:
          nvidia.com/gpu: 1
""")


def create_pod(api_client: client.ApiClient, namespace: str) -> dict:
    """POST the user's YAML as JSON, as kubectl would (the integer stays an integer)."""
    return request(api_client, "POST", f"/api/v1/namespaces/{namespace}/pods", body=USER_POD)


def tier_nodes(kube: KubeSandbox, tier: str) -> set[str]:
    return {
        n["metadata"]["name"]
        for n in kube.list("nodes")
        if (n["metadata"].get("labels") or {}).get("gpulease.io/tier") == tier
    }


@pytest.mark.parametrize("mechanism", list(PinningMechanism), ids=[m.value for m in PinningMechanism])
@pytest.mark.parametrize("tier", ["h100-3g", "l40s-shared"])
def test_user_pods_land_on_the_tier_and_stop_at_the_quota(
    kube: KubeSandbox, api, other_client, policy: Policy, retry, mechanism, tier
) -> None:
    spec = make_spec(policy, tier=tier, units=2, pinning=mechanism)
    apply(api, spec, retry=retry)
    nodes = tier_nodes(kube, tier)
    assert nodes, f"the sandbox cluster has no node of tier {tier}"
    for _ in range(spec.units):
        pod = create_pod(other_client, spec.namespace)
        assert pod["spec"]["nodeSelector"] == {"gpulease.io/tier": tier}
        name = pod["metadata"]["name"]
        node = wait_until_bound(kube, spec.namespace, name)
        assert node in nodes, f"pod {name} bound to {node}, not a {tier} node ({sorted(nodes)})"

    with pytest.raises(ApiException) as refused:
        create_pod(other_client, spec.namespace)
    assert refused.value.status == 403
    message = json.loads(refused.value.body)["message"]
    assert f"exceeded quota: {spec.object_name}" in message
    assert "requested: " in message and "requests.nvidia.com/gpu=1" in message
    assert "limited: " in message and "requests.nvidia.com/gpu=2" in message
    assert len(kube.list("pods", namespace=spec.namespace)) == spec.units


@pytest.mark.parametrize("priority_class", ["system-node-critical", "system-cluster-critical"])
def test_pods_with_a_critical_priority_class_are_refused(
    kube: KubeSandbox, api, other_client, policy: Policy, retry, priority_class
) -> None:
    # They would preempt other tenants' pods on the shared nodes.
    spec = make_spec(policy)
    apply(api, spec, retry=retry)
    pod = {**USER_POD, "spec": {**USER_POD["spec"], "priorityClassName": priority_class}}
    with pytest.raises(ApiException) as refused:
        request(other_client, "POST", f"/api/v1/namespaces/{spec.namespace}/pods", body=pod)
    assert refused.value.status == 403
    assert json.loads(refused.value.body)["message"].endswith(
        f"exceeded quota: {spec.critical_quota_name}, requested: pods=1, used: pods=0, limited: pods=0"
    )
    assert kube.list("pods", namespace=spec.namespace) == []
    create_pod(other_client, spec.namespace)  # without one, the same pod is admitted


def test_pods_outside_managed_namespaces_are_not_pinned(
    kube: KubeSandbox, api, other_client, policy: Policy, retry
) -> None:
    apply(api, make_spec(policy, pinning=PinningMechanism.MUTATING_ADMISSION_POLICY), retry=retry)
    core = client.CoreV1Api(other_client)
    core.create_namespace({"metadata": {"name": "elsewhere", "labels": {"gpulease.io/tier": "h100-1g"}}})
    pod = create_pod(other_client, "elsewhere")
    assert not pod["spec"].get("nodeSelector")


def wait_until_bound(kube: KubeSandbox, namespace: str, name: str) -> str:
    found: dict[str, str] = {}

    def bound() -> bool:
        pod = kube.get("pods", name, namespace=namespace) or {}
        found["node"] = (pod.get("spec") or {}).get("nodeName") or ""
        return bool(found["node"])

    wait_until(bound)
    return found["node"]


@pytest.mark.parametrize("mechanism", list(PinningMechanism), ids=[m.value for m in PinningMechanism])
def test_a_pod_keeps_its_own_node_selector_and_gets_the_tier(
    kube: KubeSandbox, api, other_client, policy: Policy, retry, mechanism
) -> None:
    spec = make_spec(policy, tier="h100-3g", units=1, pinning=mechanism)
    apply(api, spec, retry=retry)
    own = json.loads(json.dumps(USER_POD))
    own["spec"]["nodeSelector"] = {"kubernetes.io/os": "linux"}
    pod = request(other_client, "POST", f"/api/v1/namespaces/{spec.namespace}/pods", body=own)
    assert pod["spec"]["nodeSelector"] == {"kubernetes.io/os": "linux", "gpulease.io/tier": "h100-3g"}
