"""Placement over random traces: never over-commit a pool, never move a node with GPU pods.

A small cluster runs random arrivals, departures, finished moves, waitlist sweeps and
rebalancing; every decision of `place` (and every move of `rebalance`) is applied the way the
placer workflow would (reserve and start pods, cordon and reconfigure a node, cordon a node to
drain it) and the invariants are checked after every step. Half the runs price nodes with a
random valuation; requests say when they would end, and nodes when they empty, so draining
nodes take short leases.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from leases.capacity import NodeState, pool_capacity
from leases.moves import Prices, stale_drains
from leases.placement import (
    OfferFallback,
    PlaceAfterMove,
    PlacementRequest,
    PlaceNow,
    Refuse,
    Waitlist,
    place,
)
from leases.rebalance import rebalance
from tests.unit.test_placement import SPECS

TIERS = {name: spec for name, spec in SPECS.items() if spec.gpu_model == "H100-80GB"}
NAMES = sorted(TIERS)


@dataclass
class Node:
    name: str
    gpus: int
    tier: str | None
    schedulable: bool = True
    moving: bool = False
    target: str | None = None
    pods: dict[int, int] = field(default_factory=dict)  # lease id → pods (one unit each)
    ends: dict[int, float] = field(default_factory=dict)  # lease id → when it ends

    def state(self) -> NodeState:
        spec = TIERS.get(self.tier or "")
        return NodeState(
            name=self.name,
            gpu_model="H100-80GB",
            gpus=self.gpus,
            tier=self.tier,
            schedulable=self.schedulable,
            allocatable_gpu=self.gpus * spec.units_per_gpu if spec else 0,
            gpu_pods=sum(self.pods.values()),
            mig_config=spec.node_config if spec else "all-disabled",
            # A reconfiguration in progress: the MIG manager has not reported success yet.
            config_state="pending" if self.moving else "success",
            target_tier=self.target,
            empties_at=max(self.ends.values()) if self.ends else None,
        )


class Table:
    """A random valuation: each tier's pool is worth `weight` per unit up to `cap` units."""

    def __init__(self, weights: dict[str, tuple[float, int]]) -> None:
        self.weights = weights

    def value(self, tier: str, units: int) -> float:
        weight, cap = self.weights.get(tier, (0.0, 0))
        return weight * min(max(units, 0), cap)

    def offered(self, tier: str) -> float:
        return float(self.weights.get(tier, (0.0, 0))[1]) / 2


@dataclass
class Cluster:
    nodes: dict[str, Node]
    max_in_flight: int
    spread: bool = False
    prices: Prices | None = None
    reserved: dict[str, int] = field(default_factory=dict)
    leases: dict[int, tuple[str, int]] = field(default_factory=dict)
    ends: dict[int, float] = field(default_factory=dict)
    waiting: list[tuple[int, PlacementRequest]] = field(default_factory=list)
    moves: list[str] = field(default_factory=list)
    first_pods: dict[int, int] = field(default_factory=dict)  # pods a lease starts with
    next_id: int = 0

    def inventory(self) -> list[NodeState]:
        return [n.state() for n in self.nodes.values()]

    def decide(self, request: PlacementRequest, ahead: dict[str, int]):
        inventory = self.inventory()
        decision = place(
            inventory=inventory,
            reservations=self.reserved,
            request=request,
            tiers=TIERS,
            in_flight=len(self.moves),
            max_in_flight=self.max_in_flight,
            waiting=ahead,
            prices=self.prices,
        )
        return decision, {s.name: s for s in inventory}

    def apply(self, lease: int, request: PlacementRequest, decision, seen: dict[str, NodeState]) -> bool:
        """Apply a decision; return True when the request was placed."""
        if isinstance(decision, PlaceNow):
            tier = decision.tier
            capacity = pool_capacity(inventory=self.inventory(), tiers=TIERS)[tier]
            # A lease that ends before every busy draining node of its pool empties may also
            # use those nodes' room; nothing else may.
            busy_draining = [
                n for n in seen.values() if n.tier == tier and n.target_tier is not None and n.gpu_pods
            ]
            if request.ends_at is not None and all(
                n.empties_at is not None and request.ends_at <= n.empties_at for n in busy_draining
            ):
                capacity += sum(n.allocatable_gpu for n in busy_draining if n.schedulable)
            assert self.reserved.get(tier, 0) + request.units <= capacity, "over-committed"
            self.reserved[tier] = self.reserved.get(tier, 0) + request.units
            self.leases[lease] = (tier, request.units)
            self.ends[lease] = request.ends_at if request.ends_at is not None else 1e9
            self._start_pods(lease, self.first_pods.pop(lease, request.units))
            return True
        if isinstance(decision, PlaceAfterMove):
            assert all(move.to_tier == decision.tier for move in decision.plan.moves)
            self.start_moves(decision.plan.moves, seen)
        if isinstance(decision, Waitlist | OfferFallback) and decision.drain is not None:
            # A draining node stays schedulable for its pool's live leases (PreferNoSchedule).
            node = self.nodes[decision.drain.node]
            assert node.schedulable and node.target is None and node.tier == decision.drain.from_tier
            node.target = decision.drain.to_tier
        return False

    def start_moves(self, moves, seen: dict[str, NodeState]) -> None:
        assert len(self.moves) + len(moves) <= self.max_in_flight
        for move in moves:
            before = seen[move.node]
            assert before.gpu_pods == 0, f"moved {move.node} with {before.gpu_pods} GPU pods"
            assert move.node not in self.moves
            assert before.tier == move.from_tier
            node = self.nodes[move.node]
            node.schedulable, node.moving, node.target = False, True, move.to_tier
            self.moves.append(move.node)

    def rebalance(self) -> None:
        if self.prices is None:
            return
        inventory = self.inventory()
        moves = rebalance(
            inventory=inventory,
            reservations=self.reserved,
            tiers=TIERS,
            waiting=self._ahead(len(self.waiting)),
            prices=self.prices,
            in_flight=len(self.moves),
            max_in_flight=self.max_in_flight,
        )
        self.start_moves(moves, {s.name: s for s in inventory})

    def _start_pods(self, lease: int, count: int) -> None:
        # One pod per unit, on nodes of the pool that are not cordoned, draining nodes last:
        # packed onto the fullest node, or spread onto the emptiest (which leaves few idle nodes
        # and forces drains). Whatever the reservations, the pods of a lease must find room.
        tier, units = self.leases[lease]
        running = sum(n.pods.get(lease, 0) for n in self.nodes.values())
        count = min(count, units - running)
        serving = [n for n in self.nodes.values() if n.tier == tier and n.schedulable]
        per_gpu = TIERS[tier].units_per_gpu
        left = count
        while left:
            open_nodes = [n for n in serving if sum(n.pods.values()) < n.gpus * per_gpu]
            assert open_nodes, f"pods of a lease of {units} on {tier} found no room"
            used = lambda n: sum(n.pods.values()) / (n.gpus * per_gpu)  # noqa: E731
            fresh = [n for n in open_nodes if n.target is None] or open_nodes
            node = min(fresh, key=used) if self.spread else max(fresh, key=used)
            node.pods[lease] = node.pods.get(lease, 0) + 1
            node.ends[lease] = self.ends[lease]
            left -= 1

    def start(self, pick: int) -> None:
        """Start every pod a lease may run (leases often run fewer pods than they reserve)."""
        if self.leases:
            self._start_pods(sorted(self.leases)[pick % len(self.leases)], 64)

    def arrive(self, tier: str, units: int, pods: int, ends: float | None) -> None:
        lease, self.next_id = self.next_id, self.next_id + 1
        self.first_pods[lease] = pods
        request = PlacementRequest(tier, units, ends_at=ends)
        decision, seen = self.decide(request, self._ahead(len(self.waiting)))
        if not self.apply(lease, request, decision, seen) and not isinstance(decision, Refuse):
            self.waiting.append((lease, request))

    def sweep(self) -> None:
        # Oldest first; a placed request leaves the queue, so the ones behind it move up.
        for lease, request in list(self.waiting):
            position = next(k for k, (other, _) in enumerate(self.waiting) if other == lease)
            decision, seen = self.decide(request, self._ahead(position))
            assert not isinstance(decision, Refuse), "a waiting request became impossible"
            if self.apply(lease, request, decision, seen):
                self.waiting.pop(position)

    def _ahead(self, position: int) -> dict[str, int]:
        ahead: dict[str, int] = {}
        for _, request in self.waiting[:position]:
            ahead[request.tier] = ahead.get(request.tier, 0) + request.units
        return ahead

    def depart(self, pick: int) -> None:
        if not self.leases:
            return
        lease = sorted(self.leases)[pick % len(self.leases)]
        tier, units = self.leases.pop(lease)
        self.reserved[tier] -= units
        for node in self.nodes.values():
            node.pods.pop(lease, None)
            node.ends.pop(lease, None)

    def undrain(self) -> None:
        stale = stale_drains(
            inventory=self.inventory(),
            reservations=self.reserved,
            tiers=TIERS,
            waiting=self._ahead(len(self.waiting)),
            prices=self.prices,
        )
        for name in stale:
            assert self.nodes[name].target is not None and self.nodes[name].schedulable
            self.nodes[name].target = None

    def finish_move(self) -> None:
        if not self.moves:
            return
        node = self.nodes[self.moves.pop(0)]
        assert not node.pods, "pods landed on a node being moved"
        node.tier, node.target = node.target, None
        node.schedulable, node.moving = True, False

    def check(self) -> None:
        # Draining nodes still hold the live leases of their pool (no new ones): they count.
        capacity = pool_capacity(inventory=self.inventory(), tiers=TIERS, include_draining=True)
        for tier in TIERS:
            assert self.reserved.get(tier, 0) <= capacity[tier], f"{tier} reserved beyond capacity"
        assert len(self.moves) <= self.max_in_flight
        for node in self.nodes.values():
            assert not (node.moving and node.pods), f"{node.name} moving with pods"


nodes = st.lists(
    st.tuples(st.sampled_from([1, 1, 2, 4]), st.sampled_from([*NAMES, "h100-1g", "h100-full", None])),
    min_size=3,
    max_size=6,
)
# Most leases start every pod at once; arrivals weigh more than the rest so pools fill up and
# moves and drains happen.
arrival = st.tuples(
    st.just("arrive"),
    st.sampled_from(NAMES),
    st.integers(1, 4),
    st.sampled_from([0, 1, 2, 4, 4, 4, 4]),
    st.one_of(st.none(), st.floats(0.0, 100.0)),
)
ops = st.lists(
    st.one_of(
        arrival,
        arrival,
        arrival,
        arrival,
        arrival,
        st.tuples(st.just("depart"), st.integers(0, 50)),
        st.tuples(st.just("start"), st.integers(0, 50)),
        st.tuples(st.just("finish")),
        st.tuples(st.just("sweep")),
        st.tuples(st.just("undrain")),
        st.tuples(st.just("rebalance")),
    ),
    min_size=10,
    max_size=120,
)


valuations = st.one_of(
    st.none(),
    st.builds(
        lambda weights, share: Prices(Table(weights), fallback_share=share),
        st.dictionaries(
            st.sampled_from(NAMES), st.tuples(st.floats(0.0, 10.0), st.integers(0, 64)), min_size=1
        ),
        st.sampled_from([0.0, 0.5, 1.0]),
    ),
)


@settings(max_examples=300, deadline=None)
@given(layout=nodes, trace=ops, max_in_flight=st.integers(0, 2), spread=st.booleans(), prices=valuations)
def test_random_traces_never_over_commit_nor_move_busy_nodes(layout, trace, max_in_flight, spread, prices):
    cluster = Cluster(
        nodes={f"n{i}": Node(f"n{i}", gpus, tier) for i, (gpus, tier) in enumerate(layout)},
        max_in_flight=max_in_flight,
        spread=spread,
        prices=prices,
    )
    for op in trace:
        if op[0] == "arrive":
            cluster.arrive(op[1], min(op[2], TIERS[op[1]].max_units), op[3], op[4])
        elif op[0] == "depart":
            cluster.depart(op[1])
        elif op[0] == "start":
            cluster.start(op[1])
        elif op[0] == "finish":
            cluster.finish_move()
        elif op[0] == "undrain":
            cluster.undrain()
        elif op[0] == "rebalance":
            cluster.rebalance()
        else:
            cluster.sweep()
        cluster.check()


@settings(max_examples=300, deadline=None)
@given(
    layout=st.lists(
        st.tuples(st.integers(0, 16), st.booleans(), st.floats(1.0, 100.0)), min_size=1, max_size=5
    ),
    requests=st.lists(st.tuples(st.integers(1, 2), st.floats(0.0, 120.0)), min_size=1, max_size=30),
)
def test_short_leases_on_draining_nodes_never_delay_a_move(layout, requests):
    # One 3g pool (16 units a node); some nodes drain for whole GPUs, each holding a lease
    # that ends at its own time. Pods land as the scheduler puts them: open nodes first, the
    # fullest first; a draining node must never get a pod that outlives it, nor the pool more
    # reservations than its nodes hold.
    tier = "h100-3g"
    nodes = [
        Node(f"n{i}", 8, tier, target="h100-full" if drain else None)
        for i, (_, drain, _) in enumerate(layout)
    ]
    for lease, (node, (pods, _, ends)) in enumerate(zip(nodes, layout, strict=True)):
        if pods:
            node.pods[lease], node.ends[lease] = pods, ends
    reserved = sum(sum(n.pods.values()) for n in nodes)
    for units, ends in requests:
        decision = place(
            inventory=[n.state() for n in nodes],
            reservations={tier: reserved},
            request=PlacementRequest(tier, units, ends_at=ends),
            tiers=TIERS,
            in_flight=0,
            max_in_flight=0,
        )
        if not isinstance(decision, PlaceNow):
            continue
        reserved += units
        for _ in range(units):
            open_nodes = [n for n in nodes if sum(n.pods.values()) < 16]
            assert open_nodes, "placed beyond the pool's nodes"
            node = max(open_nodes, key=lambda n: (n.target is None, sum(n.pods.values())))
            if node.target is not None:
                assert node.ends and ends <= max(node.ends.values()), "a pod outlives its draining node"
            node.pods[-1] = node.pods.get(-1, 0) + 1
            node.ends[-1] = max(node.ends.get(-1, 0.0), ends)
