"""Demand-priced elastic pools: the value model, the tracker, priced moves and drains, drains
that still take short leases, and proactive rebalancing of idle nodes."""

from __future__ import annotations

import pytest

from leases.moves import Prices, _cost, movable, stale_drains, summarise
from leases.placement import PlaceAfterMove, PlaceNow, Waitlist, place
from leases.placement import PlacementRequest as Request
from leases.rebalance import (
    Demand,
    DemandTracker,
    TierDemand,
    accepted_rates,
    pool_limits,
    rebalance,
    rebalance_drains,
)
from tests.unit.test_placement import SPECS, decide, node

H = 3600.0


class Linear:
    """A pool is worth `per_unit[tier]` per unit, up to `cap[tier]` units; its leases would
    hold `load[tier]` units with unlimited room."""

    def __init__(
        self,
        per_unit: dict[str, float],
        cap: dict[str, int] | None = None,
        load: dict[str, float] | None = None,
    ) -> None:
        self.per_unit, self.cap, self.load = per_unit, cap or {}, load or {}

    def value(self, tier: str, units: int) -> float:
        return self.per_unit.get(tier, 0.0) * min(max(units, 0), self.cap.get(tier, 1 << 30))

    def offered(self, tier: str) -> float:
        return self.load.get(tier, 0.0)


def erlang_b(servers: int, offered: float) -> float:
    blocking = 1.0
    for k in range(1, servers + 1):
        blocking = offered * blocking / (k + offered * blocking)
    return blocking


def test_single_size_values_are_erlang_b():
    demand = TierDemand(rate_per_s=6 / H, sizes=((1, 1.0),), mean_duration_s=2 * H)  # 12 erlangs
    values = accepted_rates(demand, 40)
    for servers in (1, 5, 12, 20):
        assert values[servers] == pytest.approx(6 * (1 - erlang_b(servers, 12.0)), rel=1e-9)
    assert values[0] == 0.0 and values[-1] == pytest.approx(6.0, rel=1e-6)
    assert all(b >= a for a, b in zip(values, values[1:], strict=False))


def test_mixed_sizes_are_valued_as_leases_of_the_mean_size():
    # Leases of 1 and 2 units, half each (mean 1.5), 1 per hour for 3 hours: 3 erlangs. The
    # waitlist turns big and small leases away alike, so a pool of 1.5·k units is Erlang's loss
    # system with k servers, and in between the blocking is linear.
    demand = TierDemand(rate_per_s=1 / H, sizes=((1, 0.5), (2, 0.5)), mean_duration_s=3 * H)
    values = accepted_rates(demand, 60)
    for servers in (2, 4, 6):
        assert values[3 * servers // 2] == pytest.approx(1 - erlang_b(servers, 3.0), rel=1e-9)
    # 2 units are 4/3 servers: a third of the way from 1 server to 2.
    assert values[2] == pytest.approx(1 - (erlang_b(1, 3.0) + (erlang_b(2, 3.0) - erlang_b(1, 3.0)) / 3))
    assert all(b >= a for a, b in zip(values, values[1:], strict=False))
    # A pool smaller than a lease never takes it: 1 unit serves only the 1-unit half.
    assert values[1] == pytest.approx(0.5 * (1 - erlang_b(1, 3.0) * 2 / 3 - 1 / 3))
    only_big = TierDemand(rate_per_s=1 / H, sizes=((4, 1.0),), mean_duration_s=H)
    assert accepted_rates(only_big, 10)[:4] == [0.0] * 4 and accepted_rates(only_big, 10)[4] > 0


def test_values_stop_where_blocking_vanishes_and_respect_the_limit():
    demand = TierDemand(rate_per_s=1 / H, sizes=((1, 0.7), (2, 0.3)), mean_duration_s=H)
    values = accepted_rates(demand, 10_000)
    assert len(values) < 100 and values[-1] == pytest.approx(1.0)
    assert len(accepted_rates(demand, 3)) == 4
    assert accepted_rates(TierDemand(0.0, ((1, 1.0),), H), 10) == [0.0]
    table = Demand({"t": demand}, limits={"t": 3})
    assert table.value("t", 2) == pytest.approx(values[2]) and table.value("t", 50) == table.value("t", 3)
    assert table.value("other", 5) == 0.0 and table.value("t", 0) == 0.0


def test_tracker_learns_rate_sizes_and_durations_from_arrivals_only():
    tracker = DemandTracker(half_life_s=6 * H, learn_s=2 * H)
    for k in range(600):  # one request of 1g every 6 minutes, every third one of 2 units
        tracker.observe(tier="h100-1g", units=2 if k % 3 == 0 else 1, duration_s=4 * H, at=k * 360.0)
        if k == 10:
            assert tracker.estimate(now=k * 360.0) is None  # still learning
    estimate = tracker.estimate(now=600 * 360.0, tiers=SPECS, limits={"h100-1g": 56})
    assert estimate is not None
    got = estimate.tiers["h100-1g"]
    assert got.rate_per_s * H == pytest.approx(10.0, rel=0.05)
    assert dict(got.sizes)[2] == pytest.approx(1 / 3, abs=0.02)
    assert got.mean_duration_s == pytest.approx(4 * H)
    # A tier nobody asked for lately fades away.
    tracker.observe(tier="h100-3g", units=1, duration_s=H, at=600 * 360.0)
    later = tracker.estimate(now=600 * 360.0 + 30 * H)
    assert later is not None and later.tiers["h100-3g"].rate_per_s < 0.01 / H


def test_tracker_says_nothing_until_enough_requests_are_seen():
    tracker = DemandTracker(half_life_s=6 * H, learn_s=H, min_requests=5)
    for k in range(4):
        tracker.observe(tier="h100-1g", units=1, duration_s=H, at=k * H)
    assert tracker.estimate(now=10 * H) is None  # hours of arrivals, but only 4 requests
    tracker.observe(tier="h100-1g", units=1, duration_s=H, at=10 * H)
    assert tracker.estimate(now=10 * H) is not None


def _steady(tracker: DemandTracker, *, hours: int, start: float = 0.0) -> float:
    """Feed a steady mix for `hours`: per hour three 1g requests and one 3g request; return
    when it ends."""
    at = start
    for _ in range(hours):
        for tier in ("h100-1g", "h100-1g", "h100-1g", "h100-3g"):
            tracker.observe(tier=tier, units=1, duration_s=4 * H, at=at)
            at += H / 4
    return at


def test_a_change_of_mix_is_followed_at_once_and_a_steady_mix_keeps_the_long_estimate():
    slow = DemandTracker(half_life_s=24 * H)
    shifting = DemandTracker(half_life_s=24 * H, shift_half_life_s=4 * H)
    for tracker in (slow, shifting):
        end = _steady(tracker, hours=96)
    # A steady mix: both read the same rates (3 and 1 per hour).
    for tier, rate in (("h100-1g", 3.0), ("h100-3g", 1.0)):
        assert shifting.estimate(now=end).tiers[tier].rate_per_s * H == pytest.approx(rate, rel=0.05)
        assert shifting.estimate(now=end).tiers[tier] == slow.estimate(now=end).tiers[tier]
    # Then 3g requests come ten times as often, for 6 hours: the long estimate is still near 1
    # per hour, the shifted tier follows the recent ones; 1g, unchanged, keeps the long one.
    for tracker in (slow, shifting):
        for k in range(60):
            tracker.observe(tier="h100-3g", units=2, duration_s=2 * H, at=end + k * H / 10)
            if k % 10 in (0, 3, 6):
                tracker.observe(tier="h100-1g", units=1, duration_s=4 * H, at=end + k * H / 10)
    now = end + 6 * H
    assert slow.estimate(now=now).tiers["h100-3g"].rate_per_s * H < 4.0
    followed = shifting.estimate(now=now).tiers["h100-3g"]
    assert followed.rate_per_s * H > 6.0 and dict(followed.sizes)[2] > 0.8
    assert followed.mean_duration_s < 2.5 * H
    assert shifting.estimate(now=now).tiers["h100-1g"] == slow.estimate(now=now).tiers["h100-1g"]


def test_priced_move_only_when_the_target_gains_more_than_the_donor_loses():
    inventory = [node("a", "h100-full", pods=8), node("b", "h100-3g"), node("c", "h100-3g", pods=1)]
    reserved = {"h100-full": 8, "h100-3g": 1}
    # A 3g unit is worth 1, a whole GPU 1: the idle 3g node (16 units) beats 8 GPUs.
    cheap = Prices(Linear({"h100-3g": 1.0, "h100-full": 1.0}))
    assert isinstance(_decide(inventory, reserved, "h100-full", 1, prices=cheap), Waitlist)
    dear = Prices(Linear({"h100-3g": 1.0, "h100-full": 3.0}))
    moved = _decide(inventory, reserved, "h100-full", 1, prices=dear)
    assert isinstance(moved, PlaceAfterMove) and moved.plan.nodes == ("b",)
    # The margin: a gain of 24 against a loss of 16 passes 10 %, not 60 %.
    assert isinstance(
        _decide(inventory, reserved, "h100-full", 1, prices=Prices(dear.valuation, 0.6)), Waitlist
    )


def test_priced_donor_may_give_up_a_node_its_queue_wants_when_it_is_worth_more_elsewhere():
    inventory = [node("a", "h100-full", pods=8), node("b", "h100-3g"), node("c", "h100-3g", pods=1)]
    reserved, queued = {"h100-full": 8, "h100-3g": 1}, {"h100-3g": 16}
    assert isinstance(decide(inventory, reserved, "h100-full", 1, waiting=queued), Waitlist)
    prices = Prices(Linear({"h100-3g": 0.1, "h100-full": 1.0}))
    decision = _decide(inventory, reserved, "h100-full", 1, waiting=queued, prices=prices)
    assert isinstance(decision, PlaceAfterMove)
    # ... but never its reservations: with 17 units reserved, c alone cannot hold them.
    reserved["h100-3g"] = 17
    assert isinstance(_decide(inventory, reserved, "h100-full", 1, prices=prices), Waitlist)


def test_priced_drain_needs_the_drain_margin():
    inventory = [node("a", "h100-full", pods=8), node("b", "h100-1g", pods=3), node("c", "h100-1g", pods=1)]
    reserved = {"h100-full": 8, "h100-1g": 4}
    # c gives 56 units of 1g or 8 GPUs: worth 56 x 0.05 = 2.8 against 8 x 1, a gain of 2.86x.
    prices = Prices(Linear({"h100-1g": 0.05, "h100-full": 1.0}), drain_margin=0.5)
    drained = _decide(inventory, reserved, "h100-full", 1, prices=prices)
    assert isinstance(drained, Waitlist) and drained.drain is not None and drained.drain.node == "c"
    strict = Prices(prices.valuation, drain_margin=2.0)
    assert _decide(inventory, reserved, "h100-full", 1, prices=strict).drain is None


def test_priced_drain_ignores_the_donors_queue_but_not_the_requests_patience():
    inventory = [
        node("a", "h100-full", pods=8),
        node("b", "h100-1g", pods=3, empties_at=500.0),
        node("c", "h100-1g", pods=1, empties_at=2000.0),
    ]
    reserved = {"h100-full": 8, "h100-1g": 60}  # 1g needs both nodes for its reservations
    prices = Prices(Linear({"h100-1g": 0.01, "h100-full": 1.0}))
    assert decide(inventory, reserved, "h100-full", 1).drain is None
    drained = _decide(inventory, reserved, "h100-full", 1, prices=prices, wait_until=1000.0)
    assert drained.drain is not None and drained.drain.node == "b"  # c empties too late
    assert _decide(inventory, reserved, "h100-full", 1, prices=prices, wait_until=100.0).drain is None


def test_a_lease_that_ends_before_the_draining_nodes_empty_may_use_them():
    draining = node("b", "h100-3g", pods=4, target_tier="h100-full", empties_at=1000.0)
    inventory = [node("a", "h100-3g", pods=16), draining, node("c", "h100-full", pods=8)]
    reserved = {"h100-3g": 20, "h100-full": 8}
    assert isinstance(decide(inventory, reserved, "h100-3g", 2), Waitlist)
    placed = decide(inventory, reserved, "h100-3g", 2, ends_at=900.0)
    assert isinstance(placed, PlaceNow) and placed.tier == "h100-3g"
    assert "draining nodes empty" in placed.reason
    assert isinstance(decide(inventory, reserved, "h100-3g", 2, ends_at=1100.0), Waitlist)
    # Never more than the pool holds with its draining nodes: 32 units.
    assert isinstance(decide(inventory, reserved, "h100-3g", 2, ends_at=900.0), PlaceNow)
    assert not isinstance(decide(inventory, {"h100-3g": 31}, "h100-3g", 2, ends_at=900.0), PlaceNow)
    # A draining node whose leases' ends are unknown takes no short lease either.
    unknown = node("b", "h100-3g", pods=4, target_tier="h100-full")
    assert isinstance(decide([inventory[0], unknown], reserved, "h100-3g", 2, ends_at=900.0), Waitlist)


def test_rebalance_moves_idle_nodes_where_they_are_worth_more():
    inventory = [
        node("a", "h100-3g"),
        node("b", "h100-3g", pods=2),
        node("c", "h100-full", pods=8),
        node("d", "h100-1g", pods=5),
    ]
    reserved = {"h100-3g": 2, "h100-full": 8, "h100-1g": 5}
    prices = Prices(Linear({"h100-3g": 0.1, "h100-full": 1.0, "h100-1g": 0.01}))
    moves = _rebalance(inventory, reserved, prices)
    assert [(m.node, m.from_tier, m.to_tier) for m in moves] == [("a", "h100-3g", "h100-full")]
    assert _rebalance(inventory, reserved, prices, in_flight=1) == []
    # Not when the gain is within the margin, nor when the donor needs the node's units.
    assert _rebalance(inventory, reserved, Prices(prices.valuation, move_margin=20.0)) == []
    assert _rebalance(inventory, {**reserved, "h100-3g": 17}, prices) == []
    # Busy nodes never move, however much they are worth elsewhere.
    busy = [node("a", "h100-3g", pods=1), *inventory[1:]]
    assert _rebalance(busy, {**reserved, "h100-3g": 3}, prices) == []
    # Nor toward a tier whose reconfiguration failed lately.
    assert _rebalance(inventory, reserved, prices, paused=frozenset({"h100-full"})) == []


def test_rebalance_prices_each_pick_with_the_previous_ones_under_way():
    inventory = [node("a", "h100-3g"), node("b", "h100-3g"), node("c", "h100-full", pods=8)]
    # Whole GPUs are worth a lot up to 16, nothing beyond: one node to full, then the other
    # is worth more where it is.
    prices = Prices(Linear({"h100-3g": 0.1, "h100-full": 1.0}, cap={"h100-full": 16}))
    moves = _rebalance(inventory, {"h100-full": 8}, prices, max_in_flight=2)
    assert len(moves) == 1 and moves[0].to_tier == "h100-full"


@pytest.mark.parametrize("priced", [False, True])
def test_idle_nodes_alike_are_priced_once_and_costed_as_if_each_was(priced):
    # Many idle nodes of a few kinds (pool, size, drain target): movable prices one of each
    # kind; every node must still get exactly the cost it would get on its own.
    inventory = [node(f"n{i:02d}", "h100-3g", gpus=4 if i % 3 else 8) for i in range(9)]
    inventory += [
        node(f"m{i:02d}", "h100-1g", gpus=8 - 4 * (i % 2), target_tier="h100-full") for i in range(4)
    ]
    inventory += [node(f"u{i:02d}", None, gpus=8 - 4 * (i % 2)) for i in range(3)]
    inventory += [node("busy", "h100-full", pods=8)]
    # Capped, so that a small node may be worth moving where a big one is not.
    values = Linear({"h100-3g": 0.1, "h100-full": 1.0, "h100-1g": 0.2, "h100-shared": 0.5}, {"h100-shared": 16})
    prices = Prices(values) if priced else None
    pools = summarise(
        inventory=inventory,
        reservations={"h100-3g": 20, "h100-full": 8},
        tiers=SPECS,
        waiting={"h100-3g": 4},
        prices=prices,
    )
    for target in SPECS.values():
        got = movable(pools=pools, target=target)
        one_by_one = [
            (cost, c)
            for c in pools.idle.get(target.gpu_model, ())
            if c.from_tier != target.name and (cost := _cost(pools, c, target)) is not None
        ]
        assert got == one_by_one
    assert len(movable(pools=pools, target=SPECS["h100-full"])) >= 10


def test_priced_stale_drains_give_back_a_node_worth_more_at_home():
    draining = node("b", "h100-1g", pods=2, target_tier="h100-full")
    inventory = [node("a", "h100-1g", pods=50), draining, node("c", "h100-full", pods=8)]
    reserved = {"h100-1g": 52, "h100-full": 8}
    keep = Prices(Linear({"h100-1g": 0.01, "h100-full": 1.0}))
    back = Prices(Linear({"h100-1g": 1.0, "h100-full": 1.0}))
    args = {"inventory": inventory, "reservations": reserved, "tiers": SPECS, "waiting": {}}
    assert stale_drains(**args, prices=keep) == []
    assert stale_drains(**args, prices=back) == ["b"]


def test_pool_limits_count_every_node_of_the_model():
    limits = pool_limits([node("a", "h100-1g"), node("b", "h100-full", gpus=4)], SPECS)
    assert limits["h100-1g"] == 12 * 7 and limits["h100-full"] == 12 and limits["l40s-full"] == 0


def _decide(inventory, reserved, tier, units, *, prices, waiting=None, **request):
    return place(
        inventory=inventory,
        reservations=reserved,
        request=Request(tier, units, **request),
        tiers=SPECS,
        in_flight=0,
        max_in_flight=1,
        waiting=waiting,
        prices=prices,
    )


def _rebalance(inventory, reserved, prices, *, in_flight=0, max_in_flight=1, paused=frozenset()):
    return rebalance(
        inventory=inventory,
        reservations=reserved,
        tiers=SPECS,
        waiting={},
        prices=prices,
        in_flight=in_flight,
        max_in_flight=max_in_flight,
        paused=paused,
    )


def _drains(inventory, reserved, prices, *, max_draining=1, deadline=None, paused=frozenset()):
    drains = rebalance_drains(
        inventory=inventory,
        reservations=reserved,
        tiers=SPECS,
        waiting={},
        prices=prices,
        max_draining=max_draining,
        deadline=deadline,
        paused=paused,
    )
    return [(d.node, d.from_tier, d.to_tier) for d in drains]


def test_busy_nodes_drain_ahead_for_where_they_are_worth_more_soonest_empty_first():
    inventory = [
        node("a", "h100-3g", pods=2, empties_at=5000.0),
        node("b", "h100-3g", pods=1, empties_at=900.0),
        node("c", "h100-full", pods=8),
        node("d", "h100-1g", pods=5, empties_at=100.0),
        node("e", "h100-3g"),  # idle: it moves (rebalance), it is not drained
    ]
    reserved = {"h100-3g": 3, "h100-full": 8, "h100-1g": 5}
    prices = Prices(Linear({"h100-3g": 0.1, "h100-full": 1.0, "h100-1g": 0.05}))
    # A node is worth 8 to whole GPUs, 2.8 to 1g and 1.6 to 3g: 3g gives one up first, the
    # one that empties first. The 1g node empties sooner but is worth more where it is.
    assert _drains(inventory, reserved, prices) == [("b", "h100-3g", "h100-full")]
    assert _drains(inventory, reserved, prices, max_draining=2) == [
        ("b", "h100-3g", "h100-full"),
        ("a", "h100-3g", "h100-full"),
    ]
    # A node draining already takes the only slot; within the drain margin nothing drains.
    draining = [node("b", "h100-3g", pods=1, target_tier="h100-full"), *inventory[:1], *inventory[2:]]
    assert _drains(draining, reserved, prices) == []
    assert _drains(inventory, reserved, Prices(prices.valuation, drain_margin=10.0)) == []
    # Whole GPUs paused (a reconfiguration to them failed): the next best destination.
    assert _drains(inventory, reserved, prices, paused=frozenset({"h100-full"})) == [("b", "h100-3g", "h100-1g")]


def test_no_node_drains_ahead_that_is_not_known_to_empty_before_the_drain_timeout():
    inventory = [
        node("a", "h100-3g", pods=2, empties_at=5000.0),
        node("b", "h100-3g", pods=1, empties_at=900.0),
        node("c", "h100-full", pods=8),
        node("d", "h100-3g", pods=1),  # a GPU pod of no lease: it may never empty
    ]
    reserved = {"h100-3g": 3, "h100-full": 8}
    prices = Prices(Linear({"h100-3g": 0.1, "h100-full": 1.0}))
    assert _drains(inventory, reserved, prices, max_draining=2, deadline=1000.0) == [("b", "h100-3g", "h100-full")]
    assert _drains(inventory, reserved, prices, max_draining=2, deadline=800.0) == []


def test_drains_ahead_are_priced_again_after_each_pick():
    inventory = [node(n, "h100-3g", pods=1, empties_at=float(i)) for i, n in enumerate("abc")]
    inventory.append(node("f", "h100-full", pods=8))
    # Whole GPUs are worth a lot up to 16, nothing beyond: one node is enough.
    prices = Prices(Linear({"h100-3g": 0.1, "h100-full": 1.0}, cap={"h100-full": 16}))
    assert _drains(inventory, {"h100-3g": 3, "h100-full": 8}, prices, max_draining=3) == [
        ("a", "h100-3g", "h100-full")
    ]


def test_a_pool_whose_fallback_has_room_is_worth_less_when_requesters_take_fallbacks():
    inventory = [node("a", "h100-full", pods=8), node("b", "h100-1g"), node("s", "h100-shared", pods=2)]
    reserved = {"h100-full": 8, "h100-shared": 8}
    # b is worth 56 x 0.2 = 11.2 to 1g, 8 to the full tier: kept, when 1g requests are lost.
    per_unit = {"h100-1g": 0.2, "h100-full": 1.0, "h100-shared": 1.0}
    valuation = Linear(per_unit, cap={"h100-shared": 32}, load={"h100-shared": 8.0})
    assert isinstance(_decide(inventory, reserved, "h100-full", 1, prices=Prices(valuation)), Waitlist)
    # When they take their fallback (h100-shared, whose own leases use 1/4 of it on average
    # and are all accepted), 3/4 of what b serves is served anyway: b costs 2.8 and moves.
    sharing = Prices(valuation, fallback_share=1.0)
    moved = _decide(inventory, reserved, "h100-full", 1, prices=sharing)
    assert isinstance(moved, PlaceAfterMove) and moved.plan.nodes == ("b",)
    # A fallback its own demand fills covers nothing.
    busy = Linear(per_unit, cap={"h100-shared": 32}, load={"h100-shared": 40.0})
    assert isinstance(
        _decide(inventory, reserved, "h100-full", 1, prices=Prices(busy, fallback_share=1.0)), Waitlist
    )
