"""The simulated GPU hardware and NVIDIA software configs: GPU models (data/gpus.yaml),
mig-parted named configs (data/mig-parted-config.yaml) and device-plugin time-slicing
configs (data/device-plugin-config.yaml), with what applying a config to a node yields.

This is the outside world's copy of these facts; the product keeps its own.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

DATA = Path(__file__).parent / "data"


class ConfigError(ValueError):
    """A MIG or device-plugin config that cannot be applied to a node (the reason)."""


@dataclass(frozen=True)
class Profile:
    """One MIG profile of a model: slices, valid start positions and what GFD reports."""

    name: str
    compute: int
    memory: int
    starts: tuple[int, ...]
    memory_mib: int
    multiprocessors: int
    media: bool  # a "+me" profile: at most one per GPU

    @property
    def label_name(self) -> str:
        """The profile as label keys and values spell it ("+" is not allowed there)."""
        return self.name.replace("+", ".")

    def engines(self) -> dict[str, int]:
        # Copy/decoder/JPEG engines scale with compute slices; OFA only on the full GPU.
        return {
            "copy": self.compute,
            "decoder": self.compute,
            "encoder": 0,
            "jpeg": self.compute,
            "ofa": 1 if self.compute == 7 or self.media else 0,
        }


@dataclass(frozen=True)
class GpuModel:
    """A GPU model as NVML and GFD describe it."""

    id: str
    product: str
    device_filter: str
    memory_mib: int
    family: str
    compute_capability: tuple[int, int]
    multiprocessors: int
    compute_slices: int = 0
    memory_slices: int = 0
    profiles: tuple[Profile, ...] = ()

    @property
    def mig_capable(self) -> bool:
        return bool(self.profiles)

    def profile(self, name: str) -> Profile | None:
        return next((p for p in self.profiles if p.name == name), None)

    def fits(self, counts: dict[str, int]) -> bool:
        """Tell whether these instances (profile -> count) can coexist on one GPU."""
        wanted: list[Profile] = []
        for name, count in counts.items():
            profile = self.profile(name)
            if profile is None or count < 0:
                return False
            wanted += [profile] * count
        if sum(p.compute for p in wanted) > self.compute_slices:
            return False
        if sum(1 for p in wanted if p.media) > 1:
            return False
        # Largest first; mig-parted also tries orders until one fits.
        wanted.sort(key=lambda p: (-p.memory, -p.compute))
        return _place(wanted, [False] * self.memory_slices)


def _place(profiles: list[Profile], used: list[bool]) -> bool:
    if not profiles:
        return True
    first, rest = profiles[0], profiles[1:]
    for start in first.starts:
        span = range(start, start + first.memory)
        if span.stop > len(used) or any(used[i] for i in span):
            continue
        for i in span:
            used[i] = True
        if _place(rest, used):
            return True
        for i in span:
            used[i] = False
    return False


def _load(name: str) -> dict[str, Any]:
    return yaml.safe_load((DATA / name).read_text())


@functools.cache
def models() -> dict[str, GpuModel]:
    """Return the catalog: model id -> GpuModel."""
    data = _load("gpus.yaml")
    layouts = data["layouts"]
    result = {}
    for model_id, m in data["models"].items():
        major, minor = (int(x) for x in str(m["compute_capability"]).split("."))
        profiles: list[Profile] = []
        compute_slices = memory_slices = 0
        if "mig" in m:
            layout = layouts[m["mig"]["layout"]]
            compute_slices, memory_slices = layout["compute_slices"], layout["memory_slices"]
            for name, p in m["mig"]["profiles"].items():
                shape = layout["shapes"][p["shape"]]
                derived = m["memory_mib"] * shape["memory"] // memory_slices // 128 * 128
                profiles.append(
                    Profile(
                        name=name,
                        compute=shape["compute"],
                        memory=shape["memory"],
                        starts=tuple(shape["starts"]),
                        memory_mib=p.get("memory_mib", derived),
                        multiprocessors=p["multiprocessors"],
                        media=bool(shape.get("media")),
                    )
                )
        # A "+me" instance has the memory of the plain profile it extends.
        plain = {p.name: p.memory_mib for p in profiles}
        profiles = [
            Profile(**{**p.__dict__, "memory_mib": plain.get(p.name.removesuffix("+me"), p.memory_mib)})
            if p.media and "memory_mib" not in m["mig"]["profiles"][p.name]
            else p
            for p in profiles
        ]
        result[model_id] = GpuModel(
            id=model_id,
            product=m["product"],
            device_filter=m["device_filter"].upper().replace("0X", "0x"),
            memory_mib=m["memory_mib"],
            family=m["family"],
            compute_capability=(major, minor),
            multiprocessors=m["multiprocessors"],
            compute_slices=compute_slices,
            memory_slices=memory_slices,
            profiles=tuple(profiles),
        )
    return result


def get_model(model_id: str) -> GpuModel:
    """Return a model by id; KeyError names the known ids."""
    try:
        return models()[model_id]
    except KeyError:
        raise KeyError(f"unknown GPU model {model_id!r}; known: {', '.join(models())}") from None


@functools.cache
def mig_configs() -> dict[str, list[dict[str, Any]]]:
    """Return the mig-parted named configs."""
    return _load("mig-parted-config.yaml")["mig-configs"]


@functools.cache
def device_plugin_configs() -> dict[str, dict[str, Any]]:
    """Return the device-plugin configs by key."""
    return _load("device-plugin-config.yaml")["configs"]


def mig_geometry(config_name: str, model: GpuModel, gpus: int) -> list[dict[str, int]] | None:
    """Return the instances on each GPU (profile -> count) after applying a named config;
    None for a GPU left with MIG disabled. Raises ConfigError like mig-parted would fail."""
    entries = mig_configs().get(config_name)
    if entries is None:
        raise ConfigError(f"unknown MIG config {config_name!r}")
    per_gpu: list[dict[str, int] | None] = [None] * gpus
    matched = [False] * gpus
    for entry in entries:
        filters = entry.get("device-filter")
        if filters is not None:
            filters = [filters] if isinstance(filters, str) else filters
            if model.device_filter.lower() not in {f.lower() for f in filters}:
                continue
        devices = entry.get("devices", "all")
        indices = range(gpus) if devices == "all" else [int(i) for i in devices]
        for i in indices:
            if i >= gpus or matched[i]:
                continue
            matched[i] = True
            if entry.get("mig-enabled"):
                counts = dict(entry.get("mig-devices") or {})
                if not model.mig_capable:
                    raise ConfigError(f"{model.id} is not MIG-capable")
                if not model.fits(counts):
                    raise ConfigError(f"MIG layout {counts} is not valid on a {model.id}")
                per_gpu[i] = counts
    if not any(matched):
        raise ConfigError(f"MIG config {config_name!r} has no entry for a {model.id}")
    return per_gpu


def time_slicing_replicas(key: str | None) -> int:
    """Return replicas per GPU for a device-plugin config key (1: no sharing)."""
    config = device_plugin_configs().get(key or "default")
    if config is None:
        raise ConfigError(f"unknown device-plugin config {key!r}")
    resources = ((config.get("sharing") or {}).get("timeSlicing") or {}).get("resources") or []
    replicas = [r.get("replicas", 1) for r in resources if r.get("name") == "nvidia.com/gpu"]
    return max(replicas or [1])
