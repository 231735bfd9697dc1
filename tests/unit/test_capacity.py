"""The capacity model: tier specs from the catalog, node cross-checks, pools, reservations."""

from __future__ import annotations

import dataclasses

import pytest

from config.policy import Tier, TierMode
from leases.capacity import (
    NodeState,
    Reservation,
    TierSpec,
    assess_node,
    free_units,
    node_units,
    pool_capacity,
    product_problem,
    reserved_by_tier,
    tier_spec,
)

H100 = "H100-80GB"


def tier(name: str, mode: str, **kw) -> Tier:
    return Tier(name=name, display=name, gpu_model=kw.pop("gpu_model", H100), mode=mode, **kw)


SPECS: dict[str, TierSpec] = {
    t.name: tier_spec(t)
    for t in (
        tier("h100-1g", "mig", mig_profile="1g.10gb"),
        tier("h100-3g", "mig", mig_profile="3g.40gb"),
        tier("h100-shared", "timeslice", replicas=4),
        tier("h100-full", "full"),
    )
}


def node(name: str, tier_name: str | None, **kw) -> NodeState:
    """A healthy 8-GPU H100 node configured for its tier; keyword arguments override."""
    spec = SPECS.get(tier_name or "")
    gpus = kw.pop("gpus", 8)
    defaults = {
        "gpu_model": H100,
        "allocatable_gpu": gpus * spec.units_per_gpu if spec else 0,
        "mig_config": spec.node_config if spec else "all-disabled",
    }
    return NodeState(name=name, gpus=gpus, tier=tier_name, **(defaults | kw))


def test_tier_spec_derives_configs_and_units_from_the_catalog():
    one_g, three_g, shared, full = (SPECS[n] for n in ("h100-1g", "h100-3g", "h100-shared", "h100-full"))
    assert (one_g.units_per_gpu, one_g.node_config, one_g.plugin_config) == (7, "all-1g.10gb", None)
    assert (three_g.units_per_gpu, three_g.node_config) == (2, "all-3g.40gb")
    # Time-slicing and whole GPUs need MIG off on a MIG-capable model.
    assert (shared.units_per_gpu, shared.node_config, shared.plugin_config) == (
        4,
        "all-disabled",
        "time-sliced-4",
    )
    assert (full.units_per_gpu, full.node_config, full.plugin_config) == (1, "all-disabled", None)
    assert full.mode is TierMode.FULL and shared.gpu_cost(2) == 0.5


def test_tier_spec_keeps_a_given_node_config_and_has_no_mig_config_without_mig():
    custom = tier_spec(tier("l40s", "timeslice", gpu_model="L40S", replicas=8, node_config="ts-8"))
    assert (custom.units_per_gpu, custom.node_config, custom.plugin_config) == (8, None, "ts-8")
    # The catalog spelling of the model is kept, whatever case the policy used.
    assert tier_spec(tier("h", "full", gpu_model="h100-80gb")).gpu_model == H100


def test_consistent_node_counts_gpus_times_units_per_gpu():
    assessed = assess_node(node=node("n1", "h100-1g"), tiers=SPECS)
    assert assessed.counted and assessed.sound and assessed.units == 56 and assessed.reason is None
    assert node_units(node=node("n2", "h100-3g", gpus=4), spec=SPECS["h100-3g"]) == 8


def test_allocatable_mismatch_makes_the_node_uncounted_with_the_expected_value():
    # A 3g layout left on a node labelled for 1g: the device plugin advertises 16, not 56.
    assessed = assess_node(node=node("n1", "h100-1g", allocatable_gpu=16), tiers=SPECS)
    assert not assessed.counted and not assessed.sound and assessed.units == 0
    assert "allocatable nvidia.com/gpu is 16, expected 56" in assessed.reason


@pytest.mark.parametrize("state", ["pending", "rebooting", "failed"])
def test_config_state_other_than_success_is_not_counted(state):
    assessed = assess_node(node=node("n1", "h100-3g", config_state=state), tiers=SPECS)
    assert not assessed.counted and f"mig.config.state is {state}" in assessed.reason


def test_missing_config_state_is_judged_by_allocatable_alone():
    assert assess_node(node=node("n1", "h100-full", config_state=None), tiers=SPECS).counted


def test_wrong_gpu_model_and_wrong_mig_config_are_not_counted():
    other = assess_node(node=node("n1", "h100-full", gpu_model="A100-80GB"), tiers=SPECS)
    assert not other.counted and "A100-80GB is not the tier's H100-80GB" in other.reason
    unknown = assess_node(node=node("n2", "h100-full", gpu_model=None), tiers=SPECS)
    assert "GPU model unknown" in unknown.reason
    config = assess_node(node=node("n3", "h100-1g", mig_config="all-balanced"), tiers=SPECS)
    assert not config.counted and "needs all-1g.10gb" in config.reason


def test_cordoned_node_is_sound_but_not_counted_for_new_placements():
    assessed = assess_node(node=node("n1", "h100-1g", schedulable=False), tiers=SPECS)
    assert assessed.sound and not assessed.counted and assessed.units == 0
    assert assessed.expected == 56 and assessed.reason == "cordoned"


def test_draining_node_serves_live_leases_but_not_new_ones():
    draining = node("n1", "h100-1g", target_tier="h100-full")
    assessed = assess_node(node=draining, tiers=SPECS)
    assert assessed.sound and assessed.draining and not assessed.counted
    assert assessed.reason == "draining for h100-full"
    inventory = [draining, node("n2", "h100-1g")]
    assert pool_capacity(inventory=inventory, tiers=SPECS)["h100-1g"] == 56
    assert pool_capacity(inventory=inventory, tiers=SPECS, include_draining=True)["h100-1g"] == 112


def test_unhealthy_node_keeps_the_inventory_reason():
    assessed = assess_node(node=node("n1", "h100-1g", healthy=False, reason="NotReady"), tiers=SPECS)
    assert not assessed.counted and assessed.reason == "NotReady"
    silent = assess_node(node=node("n2", "h100-1g", healthy=False), tiers=SPECS)
    assert silent.reason == "node reported unhealthy"


def test_unlabelled_and_unknown_tier_nodes_belong_to_no_pool():
    assert assess_node(node=node("n1", None), tiers=SPECS).reason == "no gpulease.io/tier label"
    stranger = dataclasses.replace(node("n2", "h100-1g"), tier="someone-elses")
    assert assess_node(node=stranger, tiers=SPECS).reason == "unknown tier someone-elses"


def test_pool_capacity_sums_counted_nodes_per_tier():
    inventory = [
        node("a", "h100-1g"),
        node("b", "h100-1g", gpus=4),
        node("c", "h100-1g", schedulable=False),
        node("d", "h100-3g", config_state="pending"),
        node("e", "h100-full"),
        node("f", None),
    ]
    assert pool_capacity(inventory=inventory, tiers=SPECS) == {
        "h100-1g": 56 + 28,
        "h100-3g": 0,
        "h100-shared": 0,
        "h100-full": 8,
    }


def test_reservations_from_a_mapping_or_lease_rows():
    assert reserved_by_tier({"h100-1g": 3}) == {"h100-1g": 3}
    rows = [Reservation("L1", "h100-1g", 2), ("L2", "h100-1g", 3), ("L3", "h100-full", 1)]
    assert reserved_by_tier(rows) == {"h100-1g": 5, "h100-full": 1}


def test_free_units_subtract_reservations_and_never_go_negative():
    inventory = [node("a", "h100-1g"), node("b", "h100-full", schedulable=False)]
    free = free_units(
        inventory=inventory, reservations=[("L1", "h100-1g", 6), ("L2", "h100-full", 2)], tiers=SPECS
    )
    # The cordoned full node is out of the pool, so its lease shows as no room, not -2.
    assert free == {"h100-1g": 50, "h100-3g": 0, "h100-shared": 0, "h100-full": 0}


def test_the_product_label_shows_which_configuration_a_node_serves():
    product = "NVIDIA-H100-80GB-HBM3"
    assert product_problem(product=f"{product}-MIG-1g.10gb", spec=SPECS["h100-1g"]) is None
    assert product_problem(product=product, spec=SPECS["h100-full"]) is None
    assert product_problem(product=f"{product}-SHARED", spec=SPECS["h100-shared"]) is None
    # Left from the configuration before: whole GPUs where 1g slices are wanted, and so on.
    assert "not MIG 1g.10gb" in product_problem(product=product, spec=SPECS["h100-1g"])
    assert "not MIG 1g.10gb" in product_problem(product=f"{product}-MIG-3g.40gb", spec=SPECS["h100-1g"])
    assert "MIG instances h100-full does not use" in product_problem(
        product=f"{product}-MIG-1g.10gb", spec=SPECS["h100-full"]
    )
    assert "h100-shared is time-sliced" in product_problem(product=product, spec=SPECS["h100-shared"])
    assert "h100-full is not time-sliced" in product_problem(product=f"{product}-SHARED", spec=SPECS["h100-full"])
    assert product_problem(product=None, spec=SPECS["h100-full"]) == "no nvidia.com/gpu.product label"
