"""Tiers of the policy file read against the GPU catalog.

What one unit of a tier is worth (units per GPU, GPU-equivalents), and the checks of a policy
file that need the catalog: known GPU model, a MIG profile that model has, time-slicing
replicas. Imported by the policy engine, placement and the CLI.
"""

from __future__ import annotations

from collections.abc import Iterable

from config.policy import Policy, PolicyError, PolicyIssue, Tier, TierMode
from leases import gpu_catalog


def units_per_gpu(tier: Tier) -> int:
    """Return how many units of the tier one physical GPU provides."""
    return gpu_catalog.units_per_gpu(
        tier.gpu_model, mode=tier.mode.value, profile=tier.mig_profile, replicas=tier.replicas
    )


def gpu_equivalents(tier: Tier, units: int) -> float:
    """Return what `units` of the tier cost in whole GPUs (one 1g.10gb unit = 1/7 GPU)."""
    return units / units_per_gpu(tier)


def describe_unit(tier: Tier) -> str:
    """Describe one unit of the tier in words, e.g. "1/7 of an H100-80GB, 10 GB, isolated"."""
    model = gpu_catalog.get_model(tier.gpu_model)
    if tier.mode is TierMode.MIG:
        profile = model.profiles[tier.mig_profile]
        memory = profile.name.split(".", 1)[1].split("+", 1)[0].upper().replace("GB", " GB")
        return (
            f"{profile.compute_slices}/{model.compute_slices} of an {model.id}, {memory}, isolated"
        )
    if tier.mode is TierMode.TIMESLICE:
        return (
            f"1/{tier.replicas} time-share of an {model.id}, {model.memory_gb} GB shared, "
            "no memory isolation"
        )
    return f"a whole {model.id}, {model.memory_gb} GB"


def catalog_issues(policy: Policy) -> list[PolicyIssue]:
    """Return every problem of the policy's tiers against the GPU catalog."""
    issues = []
    for i, tier in enumerate(policy.tiers):
        issues.extend(_tier_issues(f"tiers[{i}]", tier))
    return issues


def _tier_issues(path: str, tier: Tier) -> Iterable[PolicyIssue]:
    try:
        model = gpu_catalog.get_model(tier.gpu_model)
    except gpu_catalog.UnknownGpuModel:
        known = ", ".join(gpu_catalog.MODELS)
        yield PolicyIssue(
            path=f"{path}.gpu_model", message=f"unknown GPU model {tier.gpu_model!r}; known: {known}"
        )
        return
    if tier.mode is TierMode.MIG:
        if not model.mig:
            yield PolicyIssue(
                path=f"{path}.mode",
                message=f"{model.id} has no MIG; use mode timeslice or full",
            )
            return
        if tier.mig_profile not in model.profiles:
            yield PolicyIssue(
                path=f"{path}.mig_profile",
                message=f"{model.id} has no MIG profile {tier.mig_profile!r}; "
                f"profiles: {', '.join(model.profiles)}",
            )
            return
        if tier.node_config is None:
            return
        layout = model.mig_configs.get(tier.node_config)
        if layout is None:
            yield PolicyIssue(
                path=f"{path}.node_config",
                message=f"no mig-parted config {tier.node_config!r} for {model.id}; "
                f"configs: {', '.join(model.mig_configs)}",
            )
        elif set(layout) != {tier.mig_profile}:
            # The single MIG strategy advertises every instance as nvidia.com/gpu, so a node
            # serving a tier must carry instances of that one profile and nothing else.
            yield PolicyIssue(
                path=f"{path}.node_config",
                message=f"config {tier.node_config!r} does not create only {tier.mig_profile} "
                "instances; a tier's nodes must carry one MIG profile (single strategy)",
            )


def check_against_catalog(policy: Policy, *, source: str) -> Policy:
    """Return the policy unchanged, or raise PolicyError listing its catalog problems."""
    issues = catalog_issues(policy)
    if issues:
        raise PolicyError(source, issues)
    return policy
