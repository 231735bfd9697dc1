"""Placement decisions: place now, move idle nodes, drain, wait, offer fallbacks, refuse."""

from __future__ import annotations

import time

from config.policy import Tier
from leases.capacity import NodeState, TierSpec, pool_capacity, tier_spec
from leases.moves import overdue_drains
from leases.placement import (
    OfferFallback,
    PlaceAfterMove,
    PlacementRequest,
    PlaceNow,
    Refuse,
    Waitlist,
    place,
)

H100 = "H100-80GB"

SPECS: dict[str, TierSpec] = {
    t.name: tier_spec(t)
    for t in (
        Tier(
            name="h100-1g",
            display="1g",
            gpu_model=H100,
            mode="mig",
            mig_profile="1g.10gb",
            fallback=["h100-shared"],
        ),
        Tier(name="h100-3g", display="3g", gpu_model=H100, mode="mig", mig_profile="3g.40gb", max_units=2),
        Tier(name="h100-shared", display="ts", gpu_model=H100, mode="timeslice", replicas=4),
        Tier(name="h100-full", display="full", gpu_model=H100, mode="full", max_units=8),
        Tier(name="l40s-full", display="l40s", gpu_model="L40S", mode="full", max_units=8),
    )
}


def node(name: str, tier: str | None, *, gpus: int = 8, pods: int = 0, **kw) -> NodeState:
    """A healthy node of the tier's model, configured for its tier; keyword arguments override."""
    spec = SPECS.get(tier or "")
    defaults = {
        "gpu_model": spec.gpu_model if spec else H100,
        "allocatable_gpu": gpus * spec.units_per_gpu if spec else 0,
        "mig_config": spec.node_config if spec else "all-disabled",
    }
    return NodeState(name=name, gpus=gpus, tier=tier, gpu_pods=pods, **(defaults | kw))


def decide(
    inventory, reserved, tier, units, *, in_flight=0, max_in_flight=1, waiting=None, paused=frozenset(), **request
):
    return place(
        inventory=inventory,
        reservations=reserved,
        request=PlacementRequest(tier, units, **request),
        tiers=SPECS,
        in_flight=in_flight,
        max_in_flight=max_in_flight,
        waiting=waiting,
        paused=paused,
    )


def test_place_now_when_the_pool_has_room():
    decision = decide([node("a", "h100-1g", pods=3)], {"h100-1g": 52}, "h100-1g", 4)
    assert decision == PlaceNow("h100-1g", "h100-1g has 4 free units")


def test_place_after_moving_an_idle_node_with_the_target_config():
    inventory = [node("a", "h100-full", pods=8), node("b", "h100-3g")]
    decision = decide(inventory, {"h100-full": 8}, "h100-full", 2)
    assert isinstance(decision, PlaceAfterMove) and decision.tier == "h100-full"
    (move,) = decision.plan.moves
    assert (move.node, move.from_tier, move.to_tier) == ("b", "h100-3g", "h100-full")
    assert (move.node_config, move.plugin_config, move.units_lost, move.units_gained) == (
        "all-disabled",
        None,
        16,
        8,
    )
    assert "moving b (h100-3g → h100-full, +8)" in decision.reason
    shared = decide([node("a", "h100-1g")], {}, "h100-shared", 1)
    assert shared.plan.moves[0].plugin_config == "time-sliced-4"
    assert shared.plan.moves[0].node_config == "all-disabled"


def test_donor_keeps_its_reservations():
    # b's pool (3g) has one lease of 2 units; its only node would leave it with nothing.
    inventory = [node("a", "h100-full", pods=8), node("b", "h100-3g", pods=0)]
    decision = decide(inventory, {"h100-full": 8, "h100-3g": 2}, "h100-full", 1)
    assert isinstance(decision, Waitlist) and decision.drain is None
    assert "no other pool can spare a node" in decision.reason
    # With a second 3g node carrying the lease, the idle one can go.
    inventory.append(node("c", "h100-3g", pods=2))
    decision = decide(inventory, {"h100-full": 8, "h100-3g": 2}, "h100-full", 1)
    assert isinstance(decision, PlaceAfterMove) and decision.plan.nodes == ("b",)


def test_donor_keeps_the_demand_already_waiting_for_it():
    inventory = [node("a", "h100-full", pods=8), node("b", "h100-3g"), node("c", "h100-3g", pods=1)]
    reserved = {"h100-full": 8, "h100-3g": 1}
    assert isinstance(decide(inventory, reserved, "h100-full", 1), PlaceAfterMove)
    # 3g has 15 free units on c alone, but 16 more are queued for it: b must stay.
    assert isinstance(decide(inventory, reserved, "h100-full", 1, waiting={"h100-3g": 16}), Waitlist)


def test_busy_node_is_never_moved_but_may_be_drained():
    inventory = [node("a", "h100-full", pods=8), node("b", "h100-1g", pods=3), node("c", "h100-1g", pods=1)]
    decision = decide(inventory, {"h100-full": 8, "h100-1g": 4}, "h100-full", 1)
    assert isinstance(decision, Waitlist)
    # c empties sooner (fewer GPU pods) and 1g keeps its 4 units on b.
    assert decision.drain is not None and decision.drain.node == "c"
    assert (decision.drain.from_tier, decision.drain.to_tier, decision.drain.gpu_pods) == (
        "h100-1g",
        "h100-full",
        1,
    )
    assert "draining c" in decision.reason


def test_no_node_moves_or_drains_toward_a_paused_tier():
    idle = [node("a", "h100-full", pods=8), node("b", "h100-3g")]
    assert isinstance(decide(idle, {"h100-full": 8}, "h100-full", 1), PlaceAfterMove)
    paused = decide(idle, {"h100-full": 8}, "h100-full", 1, paused=frozenset({"h100-full"}))
    assert isinstance(paused, Waitlist) and paused.drain is None
    assert "no node moves to it for now, as a reconfiguration to it failed" in paused.reason
    busy = [node("a", "h100-full", pods=8), node("b", "h100-1g", pods=3), node("c", "h100-1g", pods=1)]
    assert decide(busy, {"h100-full": 8, "h100-1g": 4}, "h100-full", 1).drain is not None
    assert decide(busy, {"h100-full": 8, "h100-1g": 4}, "h100-full", 1, paused=frozenset({"h100-full"})).drain is None
    # Other tiers move as before.
    assert isinstance(decide(idle, {"h100-full": 8}, "h100-1g", 1, paused=frozenset({"h100-full"})), PlaceAfterMove)


def test_no_drain_when_the_donor_needs_every_node():
    inventory = [node("a", "h100-full", pods=8), node("b", "h100-1g", pods=3), node("c", "h100-1g", pods=1)]
    decision = decide(inventory, {"h100-full": 8, "h100-1g": 60}, "h100-full", 1)
    assert isinstance(decision, Waitlist) and decision.drain is None


def test_in_flight_cap_stops_moves_without_draining():
    inventory = [node("a", "h100-full", pods=8), node("b", "h100-3g"), node("c", "h100-1g", pods=1)]
    decision = decide(inventory, {"h100-full": 8}, "h100-full", 1, in_flight=1, max_in_flight=1)
    assert isinstance(decision, Waitlist) and decision.drain is None
    assert "1 of 1 moves are in flight" in decision.reason
    two = decide(inventory, {"h100-full": 8}, "h100-full", 1, in_flight=1, max_in_flight=2)
    assert isinstance(two, PlaceAfterMove)
    assert isinstance(decide(inventory, {"h100-full": 8}, "h100-full", 1, max_in_flight=0), Waitlist)


def test_node_being_moved_counts_for_neither_tier():
    moving = node("b", "h100-3g", schedulable=False, config_state="pending", target_tier="h100-full")
    inventory = [node("a", "h100-full", pods=8), moving, node("c", "h100-3g", pods=1)]
    capacity = pool_capacity(inventory=inventory, tiers=SPECS)
    assert capacity["h100-full"] == 8 and capacity["h100-3g"] == 16
    decision = decide(inventory, {"h100-full": 8, "h100-3g": 1}, "h100-full", 2, in_flight=1, max_in_flight=2)
    # Its 8 units are on their way to full: no second move, no over-commit.
    assert isinstance(decision, Waitlist) and "8 units are already on their way" in decision.reason
    # Demand beyond what is on its way drains another node (3g cannot spare c, 1g can spare f).
    inventory += [node("e", "h100-1g", pods=2), node("f", "h100-1g", pods=1)]
    reserved = {"h100-full": 8, "h100-3g": 1, "h100-1g": 3}
    more = decide(inventory, reserved, "h100-full", 2, waiting={"h100-full": 8}, in_flight=1, max_in_flight=2)
    assert isinstance(more, Waitlist) and more.drain is not None and more.drain.node == "f"


def test_cheapest_move_unlabelled_then_drained_then_the_donor_with_most_slack():
    base = [node("a", "h100-full", pods=8)]
    donors = [
        node("d1", "h100-1g", pods=0),
        node("d2", "h100-1g", pods=2),
        node("d3", "h100-3g", pods=0),
        node("d4", "h100-3g", pods=2),
    ]
    reserved = {"h100-full": 8, "h100-1g": 40, "h100-3g": 2}
    # 3g would keep 14 spare units = 7 GPUs; 1g would keep 16 units = 2.3 GPUs: take from 3g.
    assert decide(base + donors, reserved, "h100-full", 1).plan.nodes == ("d3",)
    # Drained: still schedulable for its pool's live leases, but out of its capacity.
    drained = node("d5", "h100-1g", target_tier="h100-full")
    assert decide(base + donors + [drained], reserved, "h100-full", 1).plan.nodes == ("d5",)
    blank = node("d6", None)
    # A node drained for this very tier goes first; an unlabelled one beats any serving pool.
    assert decide(base + donors + [drained, blank], reserved, "h100-full", 1).plan.nodes == ("d5",)
    decision = decide(base + donors + [blank], reserved, "h100-full", 1)
    assert decision.plan.nodes == ("d6",) and decision.plan.moves[0].units_lost == 0
    assert decision.plan.moves[0].from_tier is None


def test_drained_node_moves_only_once_its_pools_leases_fit_without_it():
    drained = node("d", "h100-1g", target_tier="h100-full")
    inventory = [node("a", "h100-full", pods=8), drained, node("b", "h100-1g", pods=20)]
    capacity = pool_capacity(inventory=inventory, tiers=SPECS)
    assert (
        capacity["h100-1g"] == 56
        and pool_capacity(inventory=inventory, tiers=SPECS, include_draining=True)["h100-1g"] == 112
    )
    # 60 units of 1g are reserved: 4 of them may still need room on d, so d stays.
    waiting = decide(inventory, {"h100-full": 8, "h100-1g": 60}, "h100-full", 1)
    assert isinstance(waiting, Waitlist) and "8 units are already on their way" not in waiting.reason
    moved = decide(inventory, {"h100-full": 8, "h100-1g": 56}, "h100-full", 1)
    assert isinstance(moved, PlaceAfterMove) and moved.plan.moves[0].units_lost == 0


def test_drain_skips_nodes_that_empty_after_the_request_gives_up():
    inventory = [
        node("a", "h100-full", pods=8),
        node("b", "h100-1g", pods=2, empties_at=5000.0),
        node("c", "h100-1g", pods=5, empties_at=1000.0),
        node("d", "h100-1g", pods=1),
    ]
    reserved = {"h100-full": 8, "h100-1g": 8}
    # c has more pods but its leases end first; d's end is unknown, so it comes last.
    first = decide(inventory, reserved, "h100-full", 1)
    assert first.drain.node == "c" and first.drain.empties_at == 1000.0
    assert first.reason.endswith("draining c (h100-1g, 5 GPU pods) for it, empty by 1970-01-01 00:16 UTC")
    assert decide(inventory, reserved, "h100-full", 1, wait_until=900.0).drain.node == "d"


def test_drain_skips_nodes_not_known_to_empty_before_the_drain_would_be_given_up():
    inventory = [
        node("a", "h100-full", pods=8),
        node("b", "h100-1g", pods=2, empties_at=5000.0),
        node("c", "h100-1g", pods=5, empties_at=1000.0),
        node("d", "h100-1g", pods=1),  # a GPU pod of no lease: it may never empty
    ]
    reserved = {"h100-full": 8, "h100-1g": 8}

    def by(deadline):
        return place(
            inventory=inventory,
            reservations=reserved,
            request=PlacementRequest("h100-full", 1),
            tiers=SPECS,
            in_flight=0,
            max_in_flight=1,
            drain_deadline=deadline,
        )

    assert by(1000.0).drain.node == "c"
    later = by(900.0)
    assert isinstance(later, Waitlist) and later.drain is None
    assert "no other pool can spare a node now" in later.reason


def test_a_drain_is_overdue_only_when_its_node_still_holds_gpu_pods_after_the_timeout():
    inventory = [
        node("late", "h100-1g", pods=2, target_tier="h100-full", drain_started=0.0),
        node("fresh", "h100-1g", pods=2, target_tier="h100-full", drain_started=500.0),
        node("empty", "h100-1g", target_tier="h100-full", drain_started=0.0),  # it moves now
        node("moving", "h100-1g", pods=1, schedulable=False, target_tier="h100-full", drain_started=0.0),
        node("unknown", "h100-1g", pods=2, target_tier="h100-full"),  # drained, start unknown
        node("plain", "h100-1g", pods=2),
    ]
    assert overdue_drains(inventory, now=1000.0, timeout_s=600.0) == ["late"]
    assert overdue_drains(inventory, now=1000.0, timeout_s=400.0) == ["late", "fresh"]


def test_smaller_node_preferred_when_it_covers_and_several_when_none_does():
    base = [node("a", "h100-full", pods=8)]
    donors = [
        node("big", "h100-3g", gpus=8),
        node("small", "h100-3g", gpus=2),
        node("mid", "h100-3g", gpus=4),
    ]
    assert decide(base + donors, {"h100-full": 8}, "h100-full", 2).plan.nodes == ("small",)
    # 7 GPUs asked: big alone covers; a 2-node cluster of 4-GPU donors needs both.
    assert decide(base + donors, {"h100-full": 8}, "h100-full", 7).plan.nodes == ("big",)
    halves = [node("h1", "h100-3g", gpus=4), node("h2", "h100-3g", gpus=4)]
    plan = decide(base + halves, {"h100-full": 8}, "h100-full", 8, max_in_flight=2).plan
    assert sorted(plan.nodes) == ["h1", "h2"] and plan.units_gained == 8
    assert isinstance(decide(base + halves, {"h100-full": 8}, "h100-full", 8, max_in_flight=1), Waitlist)


def test_only_nodes_of_the_tiers_gpu_model_move():
    inventory = [node("a", "h100-full", pods=8), node("l", "l40s-full")]
    decision = decide(inventory, {"h100-full": 8}, "h100-full", 1)
    assert isinstance(decision, Waitlist)
    assert isinstance(decide(inventory, {}, "l40s-full", 1), PlaceNow)


def test_fallback_offered_when_the_tier_is_full():
    inventory = [node("a", "h100-1g", pods=56), node("b", "h100-shared", pods=1)]
    decision = decide(inventory, {"h100-1g": 56, "h100-shared": 1}, "h100-1g", 2)
    assert isinstance(decision, OfferFallback) and decision.tiers == ("h100-shared",)
    assert "h100-shared can take it now" in decision.reason
    # The request's own fallback list replaces the tier's.
    none = decide(inventory, {"h100-1g": 56, "h100-shared": 1}, "h100-1g", 2, fallback=("h100-full",))
    assert isinstance(none, Waitlist)


def test_accepted_alternative_is_placed_without_asking():
    inventory = [node("a", "h100-1g", pods=56), node("b", "h100-shared", pods=1)]
    decision = decide(
        inventory, {"h100-1g": 56, "h100-shared": 1}, "h100-1g", 2, accepts=frozenset({"h100-shared"})
    )
    assert isinstance(decision, PlaceNow) and decision.tier == "h100-shared"
    assert "accepted instead" in decision.reason


def test_refusals_name_the_limit():
    inventory = [node("a", "h100-full"), node("b", "h100-3g")]
    assert "unknown tier nope" in decide(inventory, {}, "nope", 1).reason
    assert isinstance(decide(inventory, {}, "h100-full", 0), Refuse)
    assert "at most 2 units per lease" in decide(inventory, {}, "h100-3g", 3).reason
    # 8 full GPUs exist in total on this 2-node cluster only if both nodes hold 4 GPUs.
    small = [node("a", "h100-full", gpus=4), node("b", "h100-3g", gpus=2)]
    refused = decide(small, {}, "h100-full", 7)
    assert isinstance(refused, Refuse) and "could hold at most 6 units" in refused.reason
    assert isinstance(decide(inventory, {}, "l40s-full", 1), Refuse)
    # Only what the cluster's nodes allow now may change; the request's own limits never do.
    assert not refused.lasting and not decide(inventory, {}, "l40s-full", 1).lasting
    assert decide(inventory, {}, "h100-3g", 3).lasting and decide(inventory, {}, "nope", 1).lasting


def test_decision_is_quick_on_a_large_cluster():
    # A guard against accidental quadratic work, with a wide margin; bench/ measures latency.
    tiers = list(SPECS)[:4]
    inventory = [node(f"n{i}", tiers[i % 4], pods=i % 3) for i in range(256)]
    start = time.perf_counter()
    for _ in range(20):
        decide(inventory, {"h100-full": 8 * 64}, "h100-full", 1)
    assert (time.perf_counter() - start) / 20 < 0.1
