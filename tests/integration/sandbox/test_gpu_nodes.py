"""Simulated GPU nodes: GFD/operator labels and allocatable for single, mixed and
time-sliced nodes, and the cluster file."""

from __future__ import annotations

from pathlib import Path

import pytest

from sandbox.kube import KubeSandbox
from sandbox.kube.cluster import ClusterFileError, load

MIXED_CLUSTER = """
name: mixed
nodes:
  - name: mixed-balanced
    gpu: H100-80GB
    gpus: 2
    mig_strategy: mixed
    mig_config: all-balanced
  - name: a100-single
    gpu: A100-40GB
    gpus: 4
    mig_config: all-1g.5gb
  - name: h100-shared-mig
    gpu: H100-80GB
    gpus: 8
    mig_config: all-3g.40gb
    device_plugin_config: time-sliced-2
  - name: a30-mixed-off
    gpu: A30
    gpus: 2
    mig_strategy: mixed
  - name: t4
    gpu: T4
    gpus: 1
    taints: [{key: nvidia.com/gpu, value: present, effect: NoSchedule}]
    unschedulable: true
"""


def labels_of(core, name: str) -> dict[str, str]:
    return core.read_node(name).metadata.labels


def test_default_cluster_nodes(core):
    nodes = {n.metadata.name: n for n in core.list_node().items}
    assert sorted(nodes) == [
        "cpu-0",
        "gpu-h100-1g-0",
        "gpu-h100-1g-1",
        "gpu-h100-3g-0",
        "gpu-h100-full-0",
        "gpu-l40s-0",
        "gpu-l40s-1",
    ]
    one_g = nodes["gpu-h100-1g-0"]
    assert one_g.metadata.labels["nvidia.com/gpu.product"] == "NVIDIA-H100-80GB-HBM3-MIG-1g.10gb"
    assert one_g.metadata.labels["nvidia.com/gpu.count"] == "56"
    assert one_g.metadata.labels["nvidia.com/gpu.memory"] == "9984"
    assert one_g.metadata.labels["nvidia.com/mig.config"] == "all-1g.10gb"
    assert one_g.metadata.labels["nvidia.com/mig.config.state"] == "success"
    assert one_g.metadata.labels["nvidia.com/mig.strategy"] == "single"
    assert one_g.metadata.labels["gpulease.io/tier"] == "h100-1g"
    assert one_g.status.allocatable["nvidia.com/gpu"] == "56"
    assert one_g.status.capacity["nvidia.com/gpu"] == "56"
    three_g = nodes["gpu-h100-3g-0"]
    assert three_g.metadata.labels["nvidia.com/gpu.product"] == "NVIDIA-H100-80GB-HBM3-MIG-3g.40gb"
    assert three_g.status.allocatable["nvidia.com/gpu"] == "16"
    assert three_g.metadata.labels["nvidia.com/gpu.multiprocessors"] == "60"
    full = nodes["gpu-h100-full-0"]
    assert full.metadata.labels["nvidia.com/gpu.product"] == "NVIDIA-H100-80GB-HBM3"
    assert full.metadata.labels["nvidia.com/gpu.memory"] == "81559"
    assert full.metadata.labels["nvidia.com/mig.config"] == "all-disabled"
    assert full.status.allocatable["nvidia.com/gpu"] == "8"
    l40s = nodes["gpu-l40s-0"]
    assert l40s.metadata.labels["nvidia.com/gpu.product"] == "NVIDIA-L40S-SHARED"
    assert l40s.metadata.labels["nvidia.com/gpu.count"] == "4"
    assert l40s.metadata.labels["nvidia.com/gpu.replicas"] == "4"
    assert l40s.metadata.labels["nvidia.com/gpu.sharing-strategy"] == "time-slicing"
    assert l40s.metadata.labels["nvidia.com/device-plugin.config"] == "time-sliced-4"
    assert l40s.metadata.labels["nvidia.com/mig.capable"] == "false"
    assert "nvidia.com/mig.config" not in l40s.metadata.labels
    assert l40s.status.allocatable["nvidia.com/gpu"] == "16"
    cpu = nodes["cpu-0"]
    assert "nvidia.com/gpu" not in cpu.status.allocatable
    assert not any(k.startswith("nvidia.com/") for k in cpu.metadata.labels)
    for node in nodes.values():
        ready = next(c for c in node.status.conditions if c.type == "Ready")
        assert ready.status == "True"
        assert node.status.node_info.kubelet_version == "v1.36.0"


@pytest.fixture
def mixed_kube(tmp_path: Path):
    path = tmp_path / "cluster.yaml"
    path.write_text(MIXED_CLUSTER)
    with KubeSandbox(path, port=0, operator_delay=0.0) as sandbox:
        yield sandbox


def test_mixed_strategy_labels_and_resources(mixed_kube):
    node = mixed_kube.get("nodes", "mixed-balanced")
    labels, allocatable = node["metadata"]["labels"], node["status"]["allocatable"]
    assert labels["nvidia.com/mig.strategy"] == "mixed"
    assert labels["nvidia.com/gpu.product"] == "NVIDIA-H100-80GB-HBM3"
    assert labels["nvidia.com/gpu.count"] == "2"
    assert labels["nvidia.com/mig-1g.10gb.count"] == "4"
    assert labels["nvidia.com/mig-1g.10gb.memory"] == "9984"
    assert labels["nvidia.com/mig-2g.20gb.count"] == "2"
    assert labels["nvidia.com/mig-2g.20gb.memory"] == "20096"
    assert labels["nvidia.com/mig-3g.40gb.product"] == "NVIDIA-H100-80GB-HBM3-MIG-3g.40gb"
    assert labels["nvidia.com/mig-3g.40gb.multiprocessors"] == "60"
    assert allocatable["nvidia.com/mig-1g.10gb"] == "4"
    assert allocatable["nvidia.com/mig-2g.20gb"] == "2"
    assert allocatable["nvidia.com/mig-3g.40gb"] == "2"
    assert "nvidia.com/gpu" not in allocatable
    off = mixed_kube.get("nodes", "a30-mixed-off")
    assert off["status"]["allocatable"]["nvidia.com/gpu"] == "2"
    assert not any(k.startswith("nvidia.com/mig-") for k in off["metadata"]["labels"])


def test_other_models_and_time_sliced_mig(mixed_kube):
    a100 = mixed_kube.get("nodes", "a100-single")
    assert a100["metadata"]["labels"]["nvidia.com/gpu.product"] == "NVIDIA-A100-SXM4-40GB-MIG-1g.5gb"
    assert a100["status"]["allocatable"]["nvidia.com/gpu"] == "28"
    shared = mixed_kube.get("nodes", "h100-shared-mig")
    labels = shared["metadata"]["labels"]
    assert labels["nvidia.com/gpu.product"] == "NVIDIA-H100-80GB-HBM3-MIG-3g.40gb-SHARED"
    assert labels["nvidia.com/gpu.count"] == "16"
    assert labels["nvidia.com/gpu.replicas"] == "2"
    assert shared["status"]["allocatable"]["nvidia.com/gpu"] == "32"
    t4 = mixed_kube.get("nodes", "t4")
    assert t4["metadata"]["labels"]["nvidia.com/gpu.product"] == "Tesla-T4"
    assert t4["spec"]["unschedulable"] is True
    keys = {t["key"] for t in t4["spec"]["taints"]}
    assert keys == {"nvidia.com/gpu", "node.kubernetes.io/unschedulable"}


def test_cordon_adds_and_uncordon_removes_the_unschedulable_taint(core):
    core.patch_node("gpu-h100-full-0", {"spec": {"unschedulable": True}})
    node = core.read_node("gpu-h100-full-0")
    assert [t.key for t in node.spec.taints] == ["node.kubernetes.io/unschedulable"]
    core.patch_node("gpu-h100-full-0", {"spec": {"unschedulable": None}})
    assert not core.read_node("gpu-h100-full-0").spec.taints


def test_node_taints_patch_replaces_the_list(core):
    taint = {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}
    core.patch_node("gpu-l40s-0", {"spec": {"taints": [taint]}})
    core.patch_node("gpu-l40s-0", {"spec": {"taints": [{**taint, "key": "other"}]}})
    assert [t.key for t in core.read_node("gpu-l40s-0").spec.taints] == ["other"]


def test_node_label_selectors(core):
    found = core.list_node(
        label_selector="gpulease.io/tier in (h100-1g,h100-3g),nvidia.com/mig.config!=all-3g.40gb"
    )
    assert sorted(n.metadata.name for n in found.items) == ["gpu-h100-1g-0", "gpu-h100-1g-1"]
    cordoned = core.list_node(field_selector="spec.unschedulable=false")
    assert len(cordoned.items) == 7


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("nodes: [{name: a, gpu: H900}]", "nodes[0].gpu: unknown GPU model 'H900'"),
        (
            "nodes: [{name: a, gpu: L4, mig_config: all-1g.10gb}]",
            "nodes[0].mig_config: L4 is not MIG-capable",
        ),
        ("nodes: [{name: a, gpu: H100-80GB, mig_config: all-1g.5gb}]", "nodes[0].mig_config: MIG layout"),
        ("nodes: [{name: a, gpu: L4, device_plugin_config: nope}]", "unknown device-plugin config 'nope'"),
        ("nodes: [{name: a, colour: red}]", "nodes[0].colour: unknown field"),
        ("nodes: [{name: a}, {name: a}]", "duplicate node names: a"),
    ],
)
def test_bad_cluster_files_fail_with_the_field(tmp_path: Path, text: str, message: str):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ClusterFileError) as err:
        load(path)
    assert str(path) in str(err.value) and message in str(err.value)


def test_add_node_at_run_time(kube, core):
    kube.add_node({"name": "extra-b200", "gpu": "B200", "gpus": 8, "mig_config": "all-7g.180gb"})
    node = core.read_node("extra-b200")
    assert node.metadata.labels["nvidia.com/gpu.product"] == "NVIDIA-B200-MIG-7g.180gb"
    assert node.status.allocatable["nvidia.com/gpu"] == "8"
