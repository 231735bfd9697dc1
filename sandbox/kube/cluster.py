"""Cluster files: the simulated nodes the stand-in starts with (YAML).

    name: sandbox
    nodes:
      - name: gpu-h100-1g          # with count: N, nodes NAME-0 .. NAME-(N-1)
        count: 2
        gpu: H100-80GB             # a model id of data/gpus.yaml, or none for a CPU node
        gpus: 8                    # GPUs per node
        mig_config: all-1g.10gb    # initial nvidia.com/mig.config (MIG-capable models;
                                   # default all-disabled)
        device_plugin_config: time-sliced-4   # initial nvidia.com/device-plugin.config
        mig_strategy: single       # single (default) | mixed
        cpu: "224"
        memory: 2Ti
        pods: 110
        labels: {gpulease.io/tier: h100-1g}
        taints: [{key: nvidia.com/gpu, value: present, effect: NoSchedule}]
        unschedulable: false       # start cordoned
        faulty: false              # every reconfiguration of this node fails

A bad file fails at start with the file, the path of the bad field and why.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from . import gpu_catalog, quantity

DEFAULT_CLUSTER = Path(__file__).parent / "clusters" / "default.yaml"
NODE_KEYS = {
    "name",
    "count",
    "gpu",
    "gpus",
    "mig_config",
    "device_plugin_config",
    "mig_strategy",
    "cpu",
    "memory",
    "pods",
    "labels",
    "taints",
    "unschedulable",
    "faulty",
}
TAINT_EFFECTS = {"NoSchedule", "PreferNoSchedule", "NoExecute"}


class ClusterFileError(ValueError):
    """A cluster file that cannot be used; the message names the file and the field."""


@dataclass
class NodeSpec:
    """One simulated node."""

    name: str
    gpu: str | None = None
    gpus: int = 0
    mig_config: str | None = None
    device_plugin_config: str | None = None
    mig_strategy: str = "single"
    cpu: str = "32"
    memory: str = "128Gi"
    pods: int = 110
    labels: dict[str, str] = field(default_factory=dict)
    taints: list[dict[str, str]] = field(default_factory=list)
    unschedulable: bool = False
    faulty: bool = False

    @property
    def model(self) -> gpu_catalog.GpuModel | None:
        return gpu_catalog.get_model(self.gpu) if self.gpu else None


@dataclass
class Cluster:
    name: str
    nodes: list[NodeSpec]


def load(path: str | Path | None = None) -> Cluster:
    """Read and check a cluster file (default: clusters/default.yaml)."""
    path = Path(path) if path else DEFAULT_CLUSTER
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ClusterFileError(f"{path}: cannot read cluster file: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("nodes"), list):
        raise ClusterFileError(f"{path}: expected a mapping with a `nodes` list")
    nodes: list[NodeSpec] = []
    for i, entry in enumerate(data["nodes"]):
        try:
            nodes += parse_node(entry)
        except ClusterFileError as exc:
            raise ClusterFileError(f"{path}: nodes[{i}]{exc}") from None
    names = [n.name for n in nodes]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ClusterFileError(f"{path}: duplicate node names: {', '.join(duplicates)}")
    return Cluster(str(data.get("name") or "sandbox"), nodes)


def _fail(field_name: str, why: str) -> ClusterFileError:
    return ClusterFileError(f".{field_name}: {why}")


def parse_node(entry: Any) -> list[NodeSpec]:
    """Check one node entry; returns one spec per node (`count` expands)."""
    if not isinstance(entry, dict):
        raise ClusterFileError(": expected a mapping")
    unknown = set(entry) - NODE_KEYS
    if unknown:
        raise _fail(sorted(unknown)[0], f"unknown field; known fields: {', '.join(sorted(NODE_KEYS))}")
    if not isinstance(entry.get("name"), str) or not entry["name"]:
        raise _fail("name", "required")
    gpu = entry.get("gpu")
    gpu = None if gpu in (None, "none", "") else str(gpu)
    model = None
    if gpu is not None:
        try:
            model = gpu_catalog.get_model(gpu)
        except KeyError as exc:
            raise _fail("gpu", str(exc.args[0])) from None
    gpus = entry.get("gpus", 1 if model else 0)
    if not isinstance(gpus, int) or gpus < 0 or (model and gpus == 0):
        raise _fail("gpus", "must be a positive integer on a GPU node")
    strategy = entry.get("mig_strategy", "single")
    if strategy not in ("single", "mixed"):
        raise _fail("mig_strategy", "must be single or mixed")
    mig_config = entry.get("mig_config")
    if model is None and (mig_config or entry.get("device_plugin_config")):
        raise _fail("mig_config", "a CPU node has no GPU configuration")
    if model is not None and model.mig_capable:
        mig_config = mig_config or "all-disabled"
        try:
            gpu_catalog.mig_geometry(mig_config, model, gpus)
        except gpu_catalog.ConfigError as exc:
            raise _fail("mig_config", str(exc)) from None
    elif mig_config:
        raise _fail("mig_config", f"{gpu} is not MIG-capable")
    dp_config = entry.get("device_plugin_config")
    try:
        gpu_catalog.time_slicing_replicas(dp_config)
    except gpu_catalog.ConfigError as exc:
        raise _fail("device_plugin_config", str(exc)) from None
    for key in ("cpu", "memory"):
        if key in entry:
            try:
                quantity.parse(entry[key])
            except quantity.QuantityError:
                raise _fail(key, f"invalid quantity {entry[key]!r}") from None
    labels = entry.get("labels") or {}
    if not isinstance(labels, dict):
        raise _fail("labels", "expected a mapping")
    taints = entry.get("taints") or []
    for j, taint in enumerate(taints):
        if not isinstance(taint, dict) or not taint.get("key") or taint.get("effect") not in TAINT_EFFECTS:
            raise _fail(f"taints[{j}]", f"needs key and effect ({', '.join(sorted(TAINT_EFFECTS))})")
    count = entry.get("count")
    if count is not None and (not isinstance(count, int) or count < 1):
        raise _fail("count", "must be a positive integer")
    names = [entry["name"]] if count is None else [f"{entry['name']}-{i}" for i in range(count)]
    return [
        NodeSpec(
            name=name,
            gpu=gpu,
            gpus=gpus,
            mig_config=mig_config,
            device_plugin_config=dp_config,
            mig_strategy=strategy,
            cpu=str(entry.get("cpu", "32")),
            memory=str(entry.get("memory", "128Gi")),
            pods=int(entry.get("pods", 110)),
            labels={str(k): str(v) for k, v in labels.items()},
            taints=[dict(t) for t in taints],
            unschedulable=bool(entry.get("unschedulable", False)),
            faulty=bool(entry.get("faulty", False)),
        )
        for name in names
    ]
