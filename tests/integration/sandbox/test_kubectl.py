"""kubectl (a client nobody here wrote) against the sandbox API server."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
from pathlib import Path

import pytest

from sandbox.kube import KubeSandbox

from .rawhttp import send
from .waiting import wait_until

KUBECTL = shutil.which("kubectl") or "/usr/bin/kubectl"
pytestmark = pytest.mark.skipif(not Path(KUBECTL).exists(), reason="kubectl is not installed")

BUNDLE = """\
apiVersion: v1
kind: Namespace
metadata:
  name: team-a
  labels:
    gpulease.io/tier: h100-1g
---
apiVersion: v1
kind: ResourceQuota
metadata:
  name: gpu
  namespace: team-a
spec:
  hard:
    requests.nvidia.com/gpu: "2"
    requests.memory: 64Gi
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: owner
  namespace: team-a
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: edit
subjects:
- kind: User
  name: oidc:alice@example.com
  apiGroup: rbac.authorization.k8s.io
"""


@pytest.fixture
def kubectl(kube: KubeSandbox, tmp_path: Path):
    """Run kubectl against the sandbox with an empty kubeconfig; returns a runner."""
    config = tmp_path / "kubeconfig"
    config.write_text("")

    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        command = [
            KUBECTL,
            f"--kubeconfig={config}",
            f"--server={kube.url}",
            f"--cache-dir={tmp_path / 'cache'}",
            "--request-timeout=20s",
            *args,
        ]
        result = subprocess.run(command, capture_output=True, text=True, timeout=60)
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {result.stderr}")
        return result

    return run


def test_get_namespaces(kubectl):
    out = kubectl("get", "ns").stdout
    assert out.splitlines()[0].split() == ["NAME", "STATUS", "AGE"]
    assert any(line.split()[:2] == ["default", "Active"] for line in out.splitlines())


def test_get_nodes_json(kubectl):
    nodes = json.loads(kubectl("get", "nodes", "-o", "json").stdout)
    assert nodes["kind"] == "List"
    by_name = {n["metadata"]["name"]: n for n in nodes["items"]}
    assert len(by_name) == 7
    h100 = by_name["gpu-h100-1g-0"]
    assert h100["metadata"]["labels"]["nvidia.com/gpu.product"] == "NVIDIA-H100-80GB-HBM3-MIG-1g.10gb"
    assert h100["status"]["allocatable"]["nvidia.com/gpu"] == "56"
    table = kubectl("get", "nodes").stdout.splitlines()
    assert table[0].split() == ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
    assert table[1].split()[1] == "Ready"


def test_label_node_overwrite_drives_the_gpu_operator(kube, kubectl):
    out = kubectl("label", "node", "gpu-h100-1g-1", "nvidia.com/mig.config=all-3g.40gb", "--overwrite").stdout
    assert "node/gpu-h100-1g-1 labeled" in out
    request = kube.requests("PATCH", "/api/v1/nodes/gpu-h100-1g-1")[-1]
    assert request.param("fieldManager") == "kubectl-label"
    wait_until(
        lambda: (
            kube.get("nodes", "gpu-h100-1g-1")["metadata"]["labels"]["nvidia.com/mig.config.state"]
            == "success"
        )
    )
    node = json.loads(kubectl("get", "node", "gpu-h100-1g-1", "-o", "json").stdout)
    assert node["status"]["allocatable"]["nvidia.com/gpu"] == "16"
    result = kubectl("label", "node", "gpu-h100-1g-1", "gpulease.io/tier=h100-3g", check=False)
    assert result.returncode != 0 and "already has a value" in result.stderr
    kubectl("label", "node", "gpu-h100-1g-1", "gpulease.io/tier=h100-3g", "--overwrite")
    assert kube.get("nodes", "gpu-h100-1g-1")["metadata"]["labels"]["gpulease.io/tier"] == "h100-3g"


def test_cordon_and_uncordon(kube, kubectl):
    kubectl("cordon", "gpu-l40s-0")
    node = kube.get("nodes", "gpu-l40s-0")
    assert node["spec"]["unschedulable"] is True
    assert "SchedulingDisabled" in kubectl("get", "node", "gpu-l40s-0").stdout
    kubectl("uncordon", "gpu-l40s-0")
    assert not kube.get("nodes", "gpu-l40s-0")["spec"].get("unschedulable")


def test_apply_server_side_bundle(kube, kubectl, tmp_path):
    manifest = tmp_path / "bundle.yaml"
    manifest.write_text(BUNDLE)
    out = kubectl("apply", "--server-side", "-f", str(manifest)).stdout
    assert "namespace/team-a serverside-applied" in out
    assert "resourcequota/gpu serverside-applied" in out
    assert "rolebinding.rbac.authorization.k8s.io/owner serverside-applied" in out
    patch = next(r for r in kube.requests("PATCH") if r.path.endswith("/namespaces/team-a"))
    assert patch.content_type == "application/apply-patch+yaml"
    assert patch.param("fieldValidation") == "Strict" and patch.param("fieldManager") == "kubectl"
    # Re-applying is idempotent.
    kubectl("apply", "--server-side", "-f", str(manifest))
    quota = json.loads(kubectl("get", "resourcequota", "gpu", "-n", "team-a", "-o", "json").stdout)
    assert quota["spec"]["hard"]["requests.nvidia.com/gpu"] == "2"


def test_apply_rejects_unknown_fields(kubectl, tmp_path):
    manifest = tmp_path / "bad.yaml"
    manifest.write_text("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: bad\nspec:\n  colour: blue\n")
    result = kubectl("apply", "--server-side", "-f", str(manifest), check=False)
    assert result.returncode != 0
    assert 'unknown field "spec.colour"' in result.stderr


def test_get_pods_all_namespaces(kube, kubectl):
    kube.create("namespaces", {"metadata": {"name": "work"}})
    kube.create(
        "pods",
        {
            "metadata": {"name": "p1", "namespace": "work"},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]},
        },
    )
    out = kubectl("get", "pods", "-A").stdout
    header = out.splitlines()[0].split()
    assert header[:2] == ["NAMESPACE", "NAME"]
    assert any(line.split()[:2] == ["work", "p1"] for line in out.splitlines()[1:])


def test_delete_namespace_waits_for_finalization(kube, kubectl, tmp_path):
    kube.namespace_controller.delay = 0.2
    manifest = tmp_path / "bundle.yaml"
    manifest.write_text(BUNDLE)
    kubectl("apply", "--server-side", "-f", str(manifest))
    out = kubectl("delete", "ns", "team-a", "--wait=true").stdout
    assert 'namespace "team-a" deleted' in out
    assert kube.get("namespaces", "team-a") is None
    assert kube.list("rolebindings", namespace="team-a", group="rbac.authorization.k8s.io") == []
    result = kubectl("get", "ns", "team-a", check=False)
    assert result.returncode != 0 and "NotFound" in result.stderr


def test_delete_protected_namespace_is_refused(kubectl):
    result = kubectl("delete", "ns", "kube-system", "--wait=false", check=False)
    assert result.returncode != 0
    assert "this namespace may not be deleted" in result.stderr


def test_wait_helper_is_bounded():
    with pytest.raises(AssertionError):
        wait_until(lambda: False, timeout=0.05)


def test_get_watch_prints_changes(kube, tmp_path):
    kube.create("namespaces", {"metadata": {"name": "watched"}})
    command = [
        KUBECTL,
        "--kubeconfig=/dev/null",
        f"--server={kube.url}",
        f"--cache-dir={tmp_path}",
        "get",
        "ns",
        "watched",
        "-w",
        "--output-watch-events",
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    killer = threading.Timer(20, process.kill)  # bounds the blocking reads below
    killer.start()
    try:
        assert process.stdout.readline().split() == ["EVENT", "NAME", "STATUS", "AGE"]
        assert process.stdout.readline().split()[:3] == ["ADDED", "watched", "Active"]
        # kubectl prints the object it read, then starts its watch: change it only after that.
        wait_until(lambda: any(r.param("watch") and r.status for r in kube.requests("GET")))
        send(kube.url, "DELETE", "/api/v1/namespaces/watched")
        assert process.stdout.readline().split()[:3] == ["MODIFIED", "watched", "Terminating"]
    finally:
        killer.cancel()
        process.kill()
        process.wait(timeout=10)


POLICY = """\
apiVersion: admissionregistration.k8s.io/v1beta1
kind: MutatingAdmissionPolicy
metadata:
  name: gpulease-tier-pinning
spec:
  matchConstraints:
    resourceRules:
    - apiGroups: [""]
      apiVersions: [v1]
      operations: [CREATE]
      resources: [pods]
  failurePolicy: Fail
  reinvocationPolicy: Never
  mutations:
  - patchType: JSONPatch
    jsonPatch:
      expression: >
        has(object.spec.nodeSelector)
        ? [JSONPatch{op: "add", path: "/spec/nodeSelector/" + jsonpatch.escapeKey("gpulease.io/tier"),
                     value: namespaceObject.metadata.labels["gpulease.io/tier"]}]
        : [JSONPatch{op: "add", path: "/spec/nodeSelector",
                     value: {"gpulease.io/tier": namespaceObject.metadata.labels["gpulease.io/tier"]}}]
---
apiVersion: admissionregistration.k8s.io/v1beta1
kind: MutatingAdmissionPolicyBinding
metadata:
  name: gpulease-tier-pinning
spec:
  policyName: gpulease-tier-pinning
  matchResources:
    namespaceSelector:
      matchExpressions: [{key: gpulease.io/tier, operator: Exists}]
---
apiVersion: v1
kind: Namespace
metadata:
  name: pinned
  labels: {gpulease.io/tier: h100-3g}
---
apiVersion: v1
kind: Pod
metadata:
  name: trainer
  namespace: pinned
spec:
  containers:
  - name: c
    image: cuda
    resources:
      limits: {nvidia.com/gpu: 1}
"""


def test_apply_mutating_admission_policy_and_a_pinned_pod(kube, kubectl, tmp_path):
    manifest = tmp_path / "policy.yaml"
    manifest.write_text(POLICY)
    out = kubectl("apply", "--server-side", "-f", str(manifest)).stdout
    assert (
        "mutatingadmissionpolicy.admissionregistration.k8s.io/gpulease-tier-pinning serverside-applied" in out
    )
    pod = json.loads(kubectl("get", "pod", "trainer", "-n", "pinned", "-o", "json").stdout)
    assert pod["spec"]["nodeSelector"] == {"gpulease.io/tier": "h100-3g"}
    assert pod["spec"]["nodeName"] == "gpu-h100-3g-0"
