"""Node objects of the simulated cluster, with the labels and resources that GPU Feature
Discovery, the device plugin and the GPU Operator really put on them
(shared/reference/gpu.md §2-§4):

- single MIG strategy: `nvidia.com/gpu.product=<NVML name>-MIG-<profile>`, `gpu.count` =
  MIG devices, per-instance `gpu.memory`/`multiprocessors`/`slices.*`/`engines.*`, and
  `nvidia.com/gpu` = GPUs x instances; a layout the single strategy cannot advertise (two
  profile types, or MIG on with no instance) leaves `nvidia.com/gpu` at 0, as the device
  plugin's "more than one MIG device type" failure does;
- mixed strategy: `nvidia.com/mig-<profile>.*` labels and `nvidia.com/mig-<profile>`
  resources, whole GPUs stay `nvidia.com/gpu`;
- time-slicing: `gpu.replicas`, `gpu.sharing-strategy=time-slicing`, a `-SHARED` product
  suffix and `nvidia.com/gpu` = GPUs x replicas, while `gpu.count` stays physical.
"""

from __future__ import annotations

import time
from typing import Any

from . import gpu_catalog, quantity
from .cluster import NodeSpec
from .gpu_catalog import GpuModel, Profile
from .meta import now

KUBELET_VERSION = "v1.36.0"
UNSCHEDULABLE_TAINT = "node.kubernetes.io/unschedulable"
MIG_CONFIG = "nvidia.com/mig.config"
MIG_STATE = "nvidia.com/mig.config.state"
DP_CONFIG = "nvidia.com/device-plugin.config"
DP_STATE = "nvidia.com/device-plugin.config.state"
DEPLOY = (
    "driver",
    "gpu-feature-discovery",
    "container-toolkit",
    "device-plugin",
    "dcgm",
    "dcgm-exporter",
    "node-status-exporter",
    "operator-validator",
)
GFD_KEYS = {
    "nvidia.com/mig.capable",
    "nvidia.com/mig.strategy",
    "nvidia.com/mps.capable",
    "nvidia.com/gfd.timestamp",
}


def is_gfd_label(key: str) -> bool:
    """True for labels GPU Feature Discovery owns (recomputed after a reconfiguration)."""
    if key.startswith("nvidia.com/gpu.deploy."):
        return False
    return key in GFD_KEYS or key.startswith(("nvidia.com/gpu.", "nvidia.com/mig-", "nvidia.com/cuda."))


def is_gpu_resource(name: str) -> bool:
    return name == "nvidia.com/gpu" or name.startswith("nvidia.com/mig-")


def _profile_labels(prefix: str, profile: Profile, count: int, product: str, replicas: int) -> dict[str, str]:
    labels = {
        f"{prefix}.count": str(count),
        f"{prefix}.memory": str(profile.memory_mib),
        f"{prefix}.multiprocessors": str(profile.multiprocessors),
        f"{prefix}.slices.gi": str(profile.compute),
        f"{prefix}.slices.ci": str(profile.compute),
        f"{prefix}.product": product,
        f"{prefix}.replicas": str(replicas),
        f"{prefix}.sharing-strategy": "time-slicing" if replicas > 1 else "none",
    }
    labels.update({f"{prefix}.engines.{k}": str(v) for k, v in profile.engines().items()})
    return labels


def gpu_state(
    spec: NodeSpec, mig_config: str | None, dp_config: str | None
) -> tuple[dict[str, str], dict[str, str]]:
    """Return (GFD labels, GPU resources) of a node with these configs applied.

    Raises gpu_catalog.ConfigError for configs that cannot be applied."""
    model = spec.model
    if model is None:
        return {}, {}
    replicas = gpu_catalog.time_slicing_replicas(dp_config)
    geometry = (
        gpu_catalog.mig_geometry(mig_config or "all-disabled", model, spec.gpus)
        if model.mig_capable
        else [None] * spec.gpus
    )
    shared = "-SHARED" if replicas > 1 else ""
    labels = {
        "nvidia.com/gpu.present": "true",
        "nvidia.com/gpu.family": model.family,
        "nvidia.com/gpu.compute.major": str(model.compute_capability[0]),
        "nvidia.com/gpu.compute.minor": str(model.compute_capability[1]),
        "nvidia.com/gpu.machine": "gpulease-sandbox",
        "nvidia.com/cuda.driver-version.full": "570.124.06",
        "nvidia.com/cuda.driver-version.major": "570",
        "nvidia.com/cuda.runtime-version.full": "12.8",
        "nvidia.com/cuda.runtime-version.major": "12",
        "nvidia.com/gfd.timestamp": str(int(time.time())),
        "nvidia.com/mig.capable": "true" if model.mig_capable else "false",
        "nvidia.com/mps.capable": "false",
        "nvidia.com/gpu.sharing-strategy": "time-slicing" if replicas > 1 else "none",
    }
    if model.mig_capable:
        labels["nvidia.com/mig.strategy"] = spec.mig_strategy
    whole = [g for g in geometry if g is None]
    instances: dict[str, int] = {}
    for layout in geometry:
        for name, count in (layout or {}).items():
            if count:
                instances[name] = instances.get(name, 0) + count
    if spec.mig_strategy == "mixed":
        return _mixed(model, spec, labels, whole, instances, replicas, shared)
    if not instances and len(whole) == spec.gpus:
        labels.update(_whole_gpu_labels(model, spec.gpus, replicas, shared))
        return labels, {"nvidia.com/gpu": str(spec.gpus * replicas)}
    if len(instances) == 1 and not whole:
        name, count = next(iter(instances.items()))
        profile = model.profile(name)
        assert profile is not None
        product = f"{model.product}-MIG-{profile.label_name}{shared}"
        mig = _profile_labels("nvidia.com/gpu", profile, count, product, replicas)
        labels.update(mig)
        return labels, {"nvidia.com/gpu": str(count * replicas)}
    # The single strategy cannot advertise this layout: the device plugin reports no device.
    labels.update(_whole_gpu_labels(model, 0, 0, ""))
    return labels, {"nvidia.com/gpu": "0"}


def _whole_gpu_labels(model: GpuModel, count: int, replicas: int, shared: str) -> dict[str, str]:
    return {
        "nvidia.com/gpu.product": f"{model.product}{shared}",
        "nvidia.com/gpu.count": str(count),
        "nvidia.com/gpu.memory": str(model.memory_mib),
        "nvidia.com/gpu.replicas": str(replicas),
    }


def _mixed(
    model: GpuModel,
    spec: NodeSpec,
    labels: dict[str, str],
    whole: list[Any],
    instances: dict[str, int],
    replicas: int,
    shared: str,
) -> tuple[dict[str, str], dict[str, str]]:
    labels.update(_whole_gpu_labels(model, spec.gpus, replicas if whole else 0, shared if whole else ""))
    resources: dict[str, str] = {}
    if whole:
        resources["nvidia.com/gpu"] = str(len(whole) * replicas)
    for name, count in instances.items():
        profile = model.profile(name)
        assert profile is not None
        prefix = f"nvidia.com/mig-{profile.label_name}"
        product = f"{model.product}-MIG-{profile.label_name}{shared}"
        labels.update(_profile_labels(prefix, profile, count, product, replicas))
        resources[prefix] = str(count * replicas)
    return labels, resources


def operator_labels(spec: NodeSpec) -> dict[str, str]:
    """Labels the GPU Operator keeps on a GPU node (deploy switches, config and state)."""
    model = spec.model
    if model is None:
        return {}
    labels = {f"nvidia.com/gpu.deploy.{c}": "true" for c in DEPLOY}
    if model.mig_capable:
        labels["nvidia.com/gpu.deploy.mig-manager"] = "true"
        labels[MIG_CONFIG] = spec.mig_config or "all-disabled"
        labels[MIG_STATE] = "success"
    if spec.device_plugin_config:
        labels[DP_CONFIG] = spec.device_plugin_config
        labels[DP_STATE] = "success"
    return labels


def _kibibytes(text: str) -> str:
    return f"{int(quantity.parse(text).value) // 1024}Ki"


def node_object(spec: NodeSpec, index: int) -> dict[str, Any]:
    """Return the Node a kubelet, GFD and the GPU Operator would have registered."""
    gfd, gpu_resources = gpu_state(spec, spec.mig_config, spec.device_plugin_config)
    labels = {
        "beta.kubernetes.io/arch": "amd64",
        "beta.kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "kubernetes.io/hostname": spec.name,
        "kubernetes.io/os": "linux",
        **spec.labels,
        **gfd,
        **operator_labels(spec),
    }
    resources = {
        "cpu": quantity.canonicalize(spec.cpu),
        "memory": _kibibytes(spec.memory),
        "ephemeral-storage": "1869423600Ki",
        "hugepages-1Gi": "0",
        "hugepages-2Mi": "0",
        "pods": str(spec.pods),
        **gpu_resources,
    }
    taints = [dict(t) for t in spec.taints]
    if spec.unschedulable:
        taints.append({"key": UNSCHEDULABLE_TAINT, "effect": "NoSchedule"})
    node: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": spec.name,
            "labels": labels,
            "annotations": {
                "node.alpha.kubernetes.io/ttl": "0",
                "volumes.kubernetes.io/controller-managed-attach-detach": "true",
            },
        },
        "spec": {"podCIDR": f"10.244.{index}.0/24", "podCIDRs": [f"10.244.{index}.0/24"]},
        "status": {
            "capacity": dict(resources),
            "allocatable": dict(resources),
            "conditions": _conditions(),
            "addresses": [
                {"type": "InternalIP", "address": f"10.0.{index // 200}.{index % 200 + 10}"},
                {"type": "Hostname", "address": spec.name},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {
                "architecture": "amd64",
                "bootID": f"00000000-0000-0000-0000-{index:012d}",
                "containerRuntimeVersion": "containerd://2.0.4",
                "kernelVersion": "6.8.0-57-generic",
                "kubeProxyVersion": KUBELET_VERSION,
                "kubeletVersion": KUBELET_VERSION,
                "machineID": f"{index:032x}",
                "operatingSystem": "linux",
                "osImage": "Ubuntu 24.04.2 LTS",
                "systemUUID": f"00000000-0000-0000-0000-{index:012d}",
            },
        },
    }
    if taints:
        node["spec"]["taints"] = taints
    if spec.unschedulable:
        node["spec"]["unschedulable"] = True
    return node


def _conditions() -> list[dict[str, str]]:
    stamp = now()
    rows = [
        ("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
        ("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
        ("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
        ("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
    ]
    return [
        {
            "type": t,
            "status": s,
            "reason": r,
            "message": m,
            "lastHeartbeatTime": stamp,
            "lastTransitionTime": stamp,
        }
        for t, s, r, m in rows
    ]


def set_gpu_state(node: dict[str, Any], labels: dict[str, str], resources: dict[str, str]) -> None:
    """Replace a node's GFD labels and GPU resources with a newly computed state."""
    current = node["metadata"].setdefault("labels", {})
    for key in [k for k in current if is_gfd_label(k)]:
        del current[key]
    current.update(labels)
    status = node.setdefault("status", {})
    for section in ("capacity", "allocatable"):
        values = status.setdefault(section, {})
        for name in [n for n in values if is_gpu_resource(n)]:
            del values[name]
        values.update(resources)


def sync_unschedulable_taint(node: dict[str, Any]) -> bool:
    """Keep the unschedulable taint in step with spec.unschedulable (TaintNodesByCondition);
    returns True when the node changed."""
    spec = node.setdefault("spec", {})
    taints = spec.get("taints") or []
    has = any(t.get("key") == UNSCHEDULABLE_TAINT for t in taints)
    if spec.get("unschedulable") and not has:
        spec["taints"] = [*taints, {"key": UNSCHEDULABLE_TAINT, "effect": "NoSchedule"}]
        return True
    if not spec.get("unschedulable") and has:
        remaining = [t for t in taints if t.get("key") != UNSCHEDULABLE_TAINT]
        if remaining:
            spec["taints"] = remaining
        else:
            spec.pop("taints", None)
        return True
    return False
