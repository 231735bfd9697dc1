"""`gpulease inventory --nodes FILE`: a kubectl dump read into nodes and tier capacity."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from config.settings import EXAMPLE_POLICY
from tests.unit.test_inventory import mig_single, node


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "gpulease", "inventory", "--policy", str(EXAMPLE_POLICY), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_inventory_from_a_node_dump(tmp_path):
    dump = {
        "kind": "List",
        "items": [
            mig_single("gpu-a"),
            mig_single("gpu-b", allocatable=49),
            mig_single("gpu-c", profile="3g.40gb", per_gpu=2, config="all-3g.40gb", tier="h100-3g"),
            node("cpu-1", {}, None),
            mig_single("gpu-d", profile="3g.40gb", per_gpu=2, config="all-3g.40gb", tier="h100-3g"),
        ],
    }
    # gpu-d drains for whole GPUs: it runs the leases on it but takes no new one.
    dump["items"][4]["metadata"]["annotations"] = {
        "gpulease.io/target-tier": "h100-full",
        "gpulease.io/draining-since": "2026-03-02T09:00:00Z",
    }
    path = tmp_path / "nodes.json"
    path.write_text(json.dumps(dump))
    result = run("--nodes", str(path), "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    nodes = {n["name"]: n for n in report["nodes"]}
    assert set(nodes["gpu-a"]) >= {"name", "gpu_model", "gpus", "tier", "schedulable", "reason"}
    assert (nodes["gpu-a"]["gpu_model"], nodes["gpu-a"]["gpus"], nodes["gpu-a"]["reason"]) == (
        "H100-80GB",
        8,
        None,
    )
    assert "allocatable is 49" in nodes["gpu-b"]["reason"]
    assert nodes["cpu-1"]["gpus"] == 0 and nodes["cpu-1"]["reason"] == "no GPUs"
    assert (nodes["gpu-d"]["target_tier"], nodes["gpu-d"]["draining_since"]) == ("h100-full", "2026-03-02T09:00:00Z")
    assert (nodes["gpu-a"]["target_tier"], nodes["gpu-a"]["draining_since"]) == (None, None)
    tiers = {t["name"]: t for t in report["tiers"]}
    assert tiers["h100-1g"]["capacity_units"] == 56 and tiers["h100-1g"]["nodes"] == 2
    assert tiers["h100-3g"]["capacity_units"] == 16
    assert tiers["h100-full"]["capacity_units"] == 0
    human = run("--nodes", str(path))
    assert human.returncode == 0 and "gpu-b" in human.stdout
    assert "draining for h100-full since" in " ".join(human.stdout.split())


def test_inventory_refuses_a_file_that_is_not_a_node_list(tmp_path):
    path = tmp_path / "x.json"
    path.write_text('{"kind": "Node"}')
    result = run("--nodes", str(path))
    assert result.returncode == 1 and "is not a node list" in result.stderr


def test_inventory_and_demand_say_what_is_missing_instead_of_a_traceback(tmp_path):
    env = {"HOME": str(tmp_path), "PATH": "/usr/bin:/bin", "GPULEASE_DATABASE_URL": f"sqlite:///{tmp_path / 'g.db'}"}
    for command in ("inventory", "demand"):
        unknown = subprocess.run(
            [sys.executable, "-m", "gpulease", command, "--policy", str(EXAMPLE_POLICY), "--cluster", "nope"],
            capture_output=True, text=True, timeout=60, env=env,
        )
        assert unknown.returncode == 1 and "unknown cluster 'nope'; known clusters: sandbox" in unknown.stderr
        assert "Traceback" not in unknown.stderr
    # No kubeconfig anywhere and no API URL: say how to point gpulease at a cluster.
    result = subprocess.run(
        [sys.executable, "-m", "gpulease", "inventory", "--policy", str(EXAMPLE_POLICY)],
        capture_output=True, text=True, timeout=60, env=env,
    )
    assert result.returncode == 1 and "cannot reach the cluster" in result.stderr
    assert "GPULEASE_KUBE_API_URL" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize(("items", "says"), [
    ([5], "items[0] is not a node"),
    ([{"metadata": "gpu-a"}], "items[0] is not a node"),
    ([{"metadata": {"name": "gpu-a", "labels": ["nvidia.com/gpu.product"]}}], "holds a node gpulease cannot read"),
])
def test_a_dump_with_something_else_than_nodes_is_a_clear_error(tmp_path, items, says):
    path = tmp_path / "[red]nodes.json"
    path.write_text(json.dumps({"items": items}))
    result = run("--nodes", str(path))
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 1
    assert f"error: {path}" in result.stderr and says in result.stderr
