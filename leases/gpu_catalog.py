"""The GPU catalog: the NVIDIA models gpulease serves, how MIG cuts them, how nodes name them.

Facts are those of shared/reference/gpu.md §1–§3 (profiles, slices, start slots, profile ids,
mig-parted configs, GFD product labels). Pure data and pure functions: leases (tiers, capacity,
placement), provisioners (mig-parted labels, inventory) and bench import it; it imports only
the standard library and leases.mig_geometry.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

from leases.mig_geometry import (
    FOUR_SLICE_A30,
    MigProfile,
    canonical,
    config_name,
    eight_slice,
    feasible_multisets,
    maximal_multisets,
    named_configs,
    place,
)

__all__ = [
    "MODELS",
    "GpuModel",
    "MigProfile",
    "ProductLabel",
    "UnknownGpuModel",
    "config_name",
    "feasible_layouts",
    "fits_one_gpu",
    "get_model",
    "maximal_layouts",
    "mig_config_for",
    "parse_product",
    "place_on_gpu",
    "units_per_gpu",
]

Mode = Literal["mig", "timeslice", "full"]
MODES: tuple[str, ...] = ("mig", "timeslice", "full")


class UnknownGpuModel(KeyError, ValueError):
    """A GPU model id the catalog does not know; the message lists the known ids."""

    def __str__(self) -> str:
        # KeyError would print the message quoted, as if it were a key.
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True)
class GpuModel:
    """A GPU model: its memory, MIG geometry, names on a node, and mig-parted configs.

    Models without MIG have no profiles, no configs and 0 compute and memory slices.
    `mig_configs` maps a mig-parted config name to the profiles it creates on each GPU.
    """

    id: str
    memory_gb: int
    mig: bool
    compute_slices: int
    memory_slices: int
    # Kept out of repr so logs and ProductLabel reprs stay one short line.
    profiles: Mapping[str, MigProfile] = field(repr=False)
    nvml_names: tuple[str, ...] = field(repr=False)
    pci_ids: tuple[str, ...] = field(repr=False)
    mig_configs: Mapping[str, Mapping[str, int]] = field(repr=False)

    # The mappings make the generated hash fail; ids are unique within the catalog.
    def __hash__(self) -> int:
        return hash(self.id)

    def profile(self, name: str) -> MigProfile:
        """Return the MIG profile `name` of this model, or raise ValueError naming the choices."""
        if not self.mig:
            raise ValueError(f"{self.id} does not support MIG; use mode 'timeslice' or 'full'")
        try:
            return self.profiles[name]
        except KeyError:
            raise ValueError(
                f"{self.id} has no MIG profile {name!r}; valid profiles: "
                + ", ".join(self.profiles)
            ) from None


@dataclass(frozen=True)
class ProductLabel:
    """A parsed `nvidia.com/gpu.product` label; `model` is None for a product not in the catalog.

    `mig_profile` is the profile named by a `-MIG-<profile>` suffix, as the catalog spells it
    (`+me`, where the label has `.me`); it is not checked against the model.
    """

    model: GpuModel | None
    mig_profile: str | None
    shared: bool
    raw: str
    product: str = ""


def _frozen(mapping: Mapping) -> Mapping:
    return MappingProxyType(dict(mapping))


def _mig_model(
    model_id: str,
    memory_gb: int,
    profiles: list[MigProfile],
    *,
    slices: tuple[int, int] = (7, 8),
    nvml_names: tuple[str, ...],
    pci_ids: tuple[str, ...],
) -> GpuModel:
    configs = named_configs(profiles)
    return GpuModel(
        id=model_id,
        memory_gb=memory_gb,
        mig=True,
        compute_slices=slices[0],
        memory_slices=slices[1],
        profiles=_frozen({p.name: p for p in profiles}),
        nvml_names=nvml_names,
        pci_ids=pci_ids,
        mig_configs=_frozen({name: _frozen(c) for name, c in configs.items()}),
    )


def _plain_model(model_id: str, memory_gb: int, *, nvml_names: tuple[str, ...]) -> GpuModel:
    return GpuModel(
        id=model_id,
        memory_gb=memory_gb,
        mig=False,
        compute_slices=0,
        memory_slices=0,
        profiles=_frozen({}),
        nvml_names=nvml_names,
        pci_ids=(),
        mig_configs=_frozen({}),
    )


# nvml_names are GFD product labels (NVML name, spaces as dashes). The un-prefixed A100 names
# are what older drivers reported (reference §4 example `A100-SXM4-40GB-MIG-1g.5gb-SHARED`).
# pci_ids: device ids as in reference §1; mig-parted device filters append the vendor, 10DE.
_ALL_MODELS = (
    _mig_model(
        "A30", 24, FOUR_SLICE_A30, slices=(4, 4), nvml_names=("NVIDIA-A30",), pci_ids=("0x20B7",)
    ),
    _mig_model(
        "A100-40GB",
        40,
        eight_slice("5gb", "10gb", "10gb", "20gb", "20gb", "40gb"),
        nvml_names=(
            "NVIDIA-A100-SXM4-40GB",
            "NVIDIA-A100-PCIE-40GB",
            "A100-SXM4-40GB",
            "A100-PCIE-40GB",
        ),
        pci_ids=("0x20B0", "0x20B1", "0x20F1", "0x20F6"),
    ),
    _mig_model(
        "A100-80GB",
        80,
        eight_slice("10gb", "20gb", "20gb", "40gb", "40gb", "80gb"),
        nvml_names=("NVIDIA-A100-SXM4-80GB", "NVIDIA-A100-80GB-PCIe"),
        pci_ids=("0x20B2", "0x20B5"),
    ),
    _mig_model(
        "H100-80GB",
        80,
        eight_slice("10gb", "20gb", "20gb", "40gb", "40gb", "80gb"),
        nvml_names=("NVIDIA-H100-80GB-HBM3", "NVIDIA-H100-PCIe"),
        pci_ids=("0x2330", "0x2331"),
    ),
    _mig_model(
        "H100-NVL-94GB",
        94,
        eight_slice("12gb", "24gb", "24gb", "47gb", "47gb", "94gb"),
        nvml_names=("NVIDIA-H100-NVL",),
        pci_ids=("0x2321",),
    ),
    _mig_model(
        "H200-141GB",
        141,
        eight_slice("18gb", "35gb", "35gb", "71gb", "71gb", "141gb"),
        nvml_names=("NVIDIA-H200", "NVIDIA-H200-NVL"),
        pci_ids=("0x2335", "0x233B"),
    ),
    # 180 GB is what the whole GPU exposes (its 7g profile is 7g.180gb).
    _mig_model(
        "B200",
        180,
        eight_slice("23gb", "45gb", "45gb", "90gb", "90gb", "180gb"),
        nvml_names=("NVIDIA-B200",),
        pci_ids=("0x2901",),
    ),
    _plain_model("L4", 24, nvml_names=("NVIDIA-L4",)),
    _plain_model("L40S", 48, nvml_names=("NVIDIA-L40S",)),
    _plain_model("A10", 24, nvml_names=("NVIDIA-A10",)),
    _plain_model("T4", 16, nvml_names=("Tesla-T4",)),
)

MODELS: Mapping[str, GpuModel] = MappingProxyType({m.id: m for m in _ALL_MODELS})

# NVML spells the same word PCIE on one part and PCIe on another; match without case.
_BY_PRODUCT: Mapping[str, GpuModel] = MappingProxyType(
    {name.casefold(): m for m in _ALL_MODELS for name in m.nvml_names}
)
_BY_ID_FOLDED: Mapping[str, GpuModel] = MappingProxyType({m.id.casefold(): m for m in _ALL_MODELS})


def get_model(model_id: str) -> GpuModel:
    """Return the catalog model `model_id` (case-insensitive), or raise UnknownGpuModel."""
    model = _BY_ID_FOLDED.get(model_id.casefold())
    if model is None:
        raise UnknownGpuModel(
            f"unknown GPU model {model_id!r}; known models: " + ", ".join(sorted(MODELS))
        )
    return model


def _resolve(model: GpuModel | str) -> GpuModel:
    return get_model(model) if isinstance(model, str) else model


def _mig_model_of(model: GpuModel | str) -> GpuModel:
    resolved = _resolve(model)
    if not resolved.mig:
        raise ValueError(f"{resolved.id} does not support MIG; use mode 'timeslice' or 'full'")
    return resolved


def place_on_gpu(model: GpuModel | str, profiles: Mapping[str, int]) -> list[tuple[str, int]] | None:
    """Return (profile, start memory slice) for each instance on one GPU, or None if none fits."""
    resolved = _mig_model_of(model)
    demand: dict[MigProfile, int] = {}
    for name, count in profiles.items():
        if count < 0:
            raise ValueError(f"count of {name!r} must be >= 0, got {count}")
        demand[resolved.profile(name)] = count
    placement = place(
        canonical(demand),
        compute_slices=resolved.compute_slices,
        memory_slices=resolved.memory_slices,
    )
    return None if placement is None else list(placement)


def fits_one_gpu(model: GpuModel | str, profiles: Mapping[str, int]) -> bool:
    """Tell whether the multiset `profiles` (name → count) fits together on one GPU."""
    return place_on_gpu(model, profiles) is not None


def units_per_gpu(
    model: GpuModel | str,
    *,
    mode: Mode,
    profile: str | None = None,
    replicas: int | None = None,
) -> int:
    """Return how many `nvidia.com/gpu` units one GPU of `model` gives in `mode`."""
    resolved = _resolve(model)
    if mode == "mig":
        if replicas is not None:
            raise ValueError("replicas are for mode 'timeslice', not 'mig'")
        _mig_model_of(resolved)
        if profile is None:
            choices = ", ".join(resolved.profiles)
            raise ValueError(f"mode 'mig' on {resolved.id} needs a profile; valid: {choices}")
        return resolved.profile(profile).max_instances
    if mode == "timeslice":
        # Time-slicing here shares the whole GPU (MIG disabled), never a MIG instance.
        if profile is not None:
            raise ValueError(
                f"mode 'timeslice' shares a whole {resolved.id}; drop profile {profile!r}"
            )
        if replicas is None or replicas < 2:
            raise ValueError(
                f"mode 'timeslice' on {resolved.id} needs replicas >= 2, got {replicas}"
            )
        return replicas
    if mode == "full":
        if profile is not None or replicas is not None:
            raise ValueError(f"mode 'full' gives a whole {resolved.id}; drop profile and replicas")
        return 1
    raise ValueError(f"unknown mode {mode!r}; valid modes: {', '.join(MODES)}")


def mig_config_for(model: GpuModel | str, profile: str) -> str:
    """Return the named mig-parted config that fills every GPU with `profile`."""
    resolved = _mig_model_of(model)
    return config_name(resolved.profile(profile).name)


def parse_product(label: str) -> ProductLabel:
    """Parse a `nvidia.com/gpu.product` label: `<product>[-MIG-<profile>][-SHARED]`."""
    rest = label.strip()
    shared = rest.endswith("-SHARED")
    if shared:
        rest = rest.removesuffix("-SHARED")
    product, has_mig, profile = rest.partition("-MIG-")
    mig_profile = None
    if has_mig and profile:
        # The device plugin writes `+` as `.` because label values cannot hold `+`.
        mig_profile = profile[: -len(".me")] + "+me" if profile.endswith(".me") else profile
    return ProductLabel(
        model=_BY_PRODUCT.get(product.casefold()),
        mig_profile=mig_profile,
        shared=shared,
        raw=label,
        product=product,
    )


def feasible_layouts(
    model: GpuModel | str, *, include_media_extensions: bool = False
) -> list[dict[str, int]]:
    """List every non-empty multiset of profiles (name → count) that fits on one GPU."""
    resolved = _mig_model_of(model)
    return feasible_multisets(
        _profiles(resolved, include_media_extensions),
        compute_slices=resolved.compute_slices,
        memory_slices=resolved.memory_slices,
    )


def maximal_layouts(
    model: GpuModel | str, *, include_media_extensions: bool = False
) -> list[dict[str, int]]:
    """List the feasible layouts of one GPU to which no further instance can be added."""
    resolved = _mig_model_of(model)
    profiles = _profiles(resolved, include_media_extensions)
    feasible = feasible_layouts(resolved, include_media_extensions=include_media_extensions)
    return maximal_multisets(feasible, [p.name for p in profiles])


def _profiles(model: GpuModel, include_media_extensions: bool) -> list[MigProfile]:
    return [p for p in model.profiles.values() if include_media_extensions or not p.media_extensions]
