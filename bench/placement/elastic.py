"""The `elastic` policy: a node-level simulation driving leases.placement.place.

Nodes start in an even split. Every arrival, and every waiting request after a lease ends or a
move finishes, gets a decision from `place` (timed: that is the decision latency), which the
simulation applies like the placer workflow would: reserve and start the lease's pods, start a
move (the node is cordoned and serves nothing for `move_time_s`), or mark a node draining
(no new lease on its capacity, PreferNoSchedule). Pods of a lease (one per unit, running for
the whole lease) are spread over the pool's least used nodes, as the default scheduler
spreads them, or with `bin_pack` put on the fullest ones (a scheduler configured with
MostAllocated scoring for `nvidia.com/gpu`, docs/deployment.md), draining nodes last either way
(their PreferNoSchedule taint); the placer does not choose nodes for pods.

With `priced` (the default), every arrival also feeds a leases.rebalance.DemandTracker (tier,
units and duration are known when a request arrives; nothing later is used), whose estimate
is refreshed every `replan_s` (timed apart: `estimate_ns`) and prices the moves and drains of
`place`; after every event `rebalance` may move idle nodes, and once a minute of simulated
time `rebalance_drains` may drain busy ones, as the placer's wake-up does (both timed:
`rebalance_ns`). A request
carries when it would end (`ends_at`), so it may use a draining node's room if it ends before
that node empties.

With `accept_fallback`, every requester also accepts its tier's fallbacks (traces.TIERS): when
its tier is full and no move can make room, `place` puts the lease on the first fallback with
room, and the lease's pods, reservation and GPU cost are that tier's. With `moves` off, the
split is fixed: the same queue discipline without moves, drains, rebalancing or prices.
Imported by bench.placement only.
"""

from __future__ import annotations

import heapq
import itertools
import time
from dataclasses import dataclass, replace

import numpy as np

from bench.placement.outcome import Outcome, use_from_starts
from bench.placement.traces import GPUS_PER_NODE, MODEL, TIER_NAMES, TIERS, Trace
from leases.capacity import NodeState
from leases.moves import Prices, overdue_drains, stale_drains
from leases.placement import (
    Decision,
    OfferFallback,
    PlaceAfterMove,
    PlacementRequest,
    PlaceNow,
    Refuse,
    place,
)
from leases.rebalance import DemandTracker, pool_limits, rebalance, rebalance_drains

_ARRIVE, _END, _MOVED = 0, 1, 2


@dataclass(frozen=True)
class ElasticConfig:
    """Knobs of the elastic policy: how long a move takes, how many may run at once, and how
    nodes are priced (`priced`: by demand learned from past arrivals, forgotten with
    `half_life_s`, or with `shift_half_life_s` for a tier whose mix changed, as in
    leases.rebalance.DemandTracker; none before `learn_s` of arrivals and `min_requests`
    requests, re-estimated every `replan_s`; margins as in leases.moves.Prices; `priced_wait_s`: a request waiting
    that long is placed without prices, as in the placer), `proactive`: idle nodes move, and
    busy ones are drained (checked every `sweep_s`, the placer's wake-up), before anyone asks,
    `drain_backfill`: requests say when they end, so short ones may use draining nodes,
    `drain_timeout_s`: a drain is given up after that long, and a node not known to empty
    within it is not drained (the placer's `placement.drain_timeout`), `accept_fallback`:
    requesters accept their tier's fallbacks, `moves`: False fixes the split (no moves,
    drains, rebalancing or prices, whatever the other knobs say), `bin_pack`: the scheduler
    puts pods on the fullest node (MostAllocated), not the emptiest (the default),
    `gpus_per_node`: the GPUs of every node, each node serving one tier at a time."""

    move_time_s: float = 300.0
    max_in_flight: int = 1
    priced: bool = True
    proactive: bool = True
    drain_backfill: bool = True
    half_life_s: float = 24 * 3600.0
    shift_half_life_s: float | None = 4 * 3600.0
    learn_s: float = 4 * 3600.0
    min_requests: int = 30
    priced_wait_s: float = 4 * 3600.0
    replan_s: float = 900.0
    sweep_s: float = 60.0
    move_margin: float = 0.1
    drain_margin: float = 0.5
    drain_timeout_s: float = 3 * 86400.0
    accept_fallback: bool = False
    moves: bool = True
    bin_pack: bool = False
    gpus_per_node: int = GPUS_PER_NODE


@dataclass
class _Node:
    name: str
    tier: str | None
    gpus: int
    used: int = 0
    schedulable: bool = True
    moving: bool = False
    target: str | None = None
    drain_started: float | None = None
    ends: dict[int, float] | None = None  # lease → expiry, of leases with pods here

    def state(self) -> NodeState:
        spec = TIERS.get(self.tier or "")
        return NodeState(
            name=self.name,
            gpu_model=MODEL,
            gpus=self.gpus,
            tier=self.tier,
            schedulable=self.schedulable,
            allocatable_gpu=self.gpus * spec.units_per_gpu if spec else 0,
            gpu_pods=self.used,
            mig_config=spec.node_config if spec else "all-disabled",
            config_state="pending" if self.moving else "success",
            target_tier=self.target,
            empties_at=max(self.ends.values()) if self.ends else None,
            drain_started=self.drain_started,
        )


class ElasticSim:
    """One run of the elastic policy over a trace."""

    def __init__(self, trace: Trace, *, split: tuple[int, ...], config: ElasticConfig) -> None:
        if not config.moves:
            config = replace(config, max_in_flight=0, priced=False, proactive=False, drain_backfill=False)
        self.trace = trace
        self.config = config
        self.move_time_s = config.move_time_s
        self.max_in_flight = config.max_in_flight
        names = [name for name, n in zip(TIER_NAMES, split, strict=True) for _ in range(n)]
        self.nodes = [_Node(f"node-{i:03d}", tier, config.gpus_per_node) for i, tier in enumerate(names)]
        self.index = {node.name: i for i, node in enumerate(self.nodes)}
        self.states = [node.state() for node in self.nodes]
        self.reserved = dict.fromkeys(TIER_NAMES, 0)
        self.queued = dict.fromkeys(TIER_NAMES, 0)
        self.waiting: list[int] = []
        self.pods: dict[int, list[tuple[int, int]]] = {}
        self.start = np.full(len(trace), np.nan)
        self.ran_on = np.full(len(trace), -1)
        self.events: list[tuple[float, int, int, int]] = []
        self.seq = itertools.count()
        self.outcome = Outcome(
            start=self.start, use_times=np.empty(0), use_gpus=np.empty(0), ran_on=self.ran_on
        )
        self.tracker = DemandTracker(
            half_life_s=config.half_life_s,
            learn_s=config.learn_s,
            min_requests=config.min_requests,
            shift_half_life_s=config.shift_half_life_s,
        )
        self.limits = pool_limits(self.states, TIERS)
        self.prices: Prices | None = None
        self.planned_at = -np.inf
        self.drained_at = -np.inf

    def run(self) -> Outcome:
        """Simulate the whole trace and return what happened."""
        trace = self.trace
        for i in range(len(trace)):
            self._push(float(trace.arrival[i]), _ARRIVE, i)
        while self.events:
            now, _, kind, item = heapq.heappop(self.events)
            if kind == _ARRIVE:
                self._observe(now, item)
                self._expire(now)
                self._arrive(now, item)
                if self._undrain():
                    self._sweep(now)
            elif kind == _END:
                self._end(item)
                self._sweep(now)
            else:
                self._moved(item)
                self._sweep(now)
            self._rebalance(now)
        self.outcome.use_times, self.outcome.use_gpus = use_from_starts(trace, self.start, self.ran_on)
        return self.outcome

    def _push(self, when: float, kind: int, item: int) -> None:
        heapq.heappush(self.events, (when, next(self.seq), kind, item))

    def _touch(self, k: int) -> None:
        self.states[k] = self.nodes[k].state()

    def _observe(self, now: float, i: int) -> None:
        """Learn from the arrival (its tier, units and duration are known when it arrives) and
        re-estimate demand when the last estimate is `replan_s` old."""
        if not self.config.priced:
            return
        trace = self.trace
        self.tracker.observe(
            tier=TIER_NAMES[trace.tier[i]],
            units=int(trace.units[i]),
            duration_s=float(trace.duration[i]),
            at=now,
        )
        if now - self.planned_at < self.config.replan_s:
            return
        began = time.perf_counter_ns()
        demand = self.tracker.estimate(now=now, tiers=TIERS, limits=self.limits)
        if demand is not None:
            self.prices = Prices(
                demand.prepare(),
                move_margin=self.config.move_margin,
                drain_margin=self.config.drain_margin,
                # Requesters here take every fallback offered: pools are priced knowing it.
                fallback_share=1.0 if self.config.accept_fallback else 0.0,
            )
            self.planned_at = now
            self.outcome.estimate_ns.append(time.perf_counter_ns() - began)

    def _rebalance(self, now: float) -> None:
        if self.prices is None or not self.config.proactive:
            return
        self._drain_ahead(now)
        in_flight = sum(node.moving for node in self.nodes)
        if in_flight >= self.max_in_flight or all(node.used or node.moving for node in self.nodes):
            return  # no free slot, or no idle node: nothing could move (a shortcut, not a rule)
        began = time.perf_counter_ns()
        moves = rebalance(
            inventory=self.states,
            reservations=self.reserved,
            tiers=TIERS,
            waiting=self.queued,
            prices=self.prices,
            in_flight=in_flight,
            max_in_flight=self.max_in_flight,
        )
        self.outcome.rebalance_ns.append(time.perf_counter_ns() - began)
        if moves:
            self._start_moves(now, moves)

    def _drain_ahead(self, now: float) -> None:
        """Drain busy nodes for where they are worth more, once per `sweep_s` (the placer's
        minute wake-up), at most `max_in_flight` at a time (timed with rebalancing)."""
        if now - self.drained_at < self.config.sweep_s:
            return
        self.drained_at = now
        began = time.perf_counter_ns()
        for name in overdue_drains(self.states, now=now, timeout_s=self.config.drain_timeout_s):
            self._give_back(self.index[name])
        drains = rebalance_drains(
            inventory=self.states,
            reservations=self.reserved,
            tiers=TIERS,
            waiting=self.queued,
            prices=self.prices,
            max_draining=self.max_in_flight,
            deadline=now + self.config.drain_timeout_s,
        )
        self.outcome.rebalance_ns.append(time.perf_counter_ns() - began)
        self._start_drains(now, drains)

    def _decide(self, now: float, i: int, waiting: dict[str, int]) -> Decision:
        trace = self.trace
        tier = TIER_NAMES[trace.tier[i]]
        request = PlacementRequest(
            tier,
            int(trace.units[i]),
            accepts=frozenset(TIERS[tier].fallback) if self.config.accept_fallback else frozenset(),
            # Requesters give up after their patience, but do not say when: the placer knows
            # only `placement.max_wait`, off by default.
            wait_until=None,
            ends_at=now + float(trace.duration[i]) if self.config.drain_backfill else None,
        )
        began = time.perf_counter_ns()
        decision = place(
            inventory=self.states,
            reservations=self.reserved,
            request=request,
            tiers=TIERS,
            in_flight=sum(node.moving for node in self.nodes),
            max_in_flight=self.max_in_flight,
            waiting=waiting,
            # As in the placer: prices may delay a request, but one waiting `priced_wait_s` may
            # have any spare node.
            prices=self.prices if self._priced(now, i) else None,
            drain_deadline=now + self.config.drain_timeout_s,
        )
        self.outcome.decision_ns.append(time.perf_counter_ns() - began)
        return decision

    def _priced(self, now: float, i: int) -> bool:
        """Return whether request i is still decided with prices (it has waited less than
        `priced_wait_s`)."""
        return now - float(self.trace.arrival[i]) < self.config.priced_wait_s

    def _taken(self, decision: Decision) -> str | None:
        """Return the tier the lease goes to now, if any: where `place` put it or, when the
        requester accepts fallbacks, the first one offered (unreachable while `accepts` holds
        every fallback of the tier: `place` then offers none, it places on them itself)."""
        if isinstance(decision, PlaceNow):
            return decision.tier
        if isinstance(decision, OfferFallback) and self.config.accept_fallback:
            return decision.tiers[0]
        return None

    def _arrive(self, now: float, i: int) -> None:
        decision = self._decide(now, i, self.queued)
        taken = self._taken(decision)
        if taken is not None:
            self._place(now, i, taken)
            return
        if isinstance(decision, Refuse):
            return
        self._act(now, decision)
        tier = TIER_NAMES[self.trace.tier[i]]
        self.waiting.append(i)
        self.queued[tier] += int(self.trace.units[i])

    def _act(self, now: float, decision: Decision) -> None:
        if not self.config.moves:
            return
        if isinstance(decision, PlaceAfterMove):
            self._start_moves(now, decision.plan.moves)
            return
        drain = getattr(decision, "drain", None)
        if drain is not None:
            self._start_drains(now, [drain])

    def _start_moves(self, now: float, moves) -> None:
        for move in moves:
            k = self.index[move.node]
            node = self.nodes[k]
            assert node.used == 0, "placement moved a node with GPU pods"
            node.schedulable, node.moving, node.target = False, True, move.to_tier
            self._touch(k)
            self.outcome.moves += 1
            self._push(now + self.move_time_s, _MOVED, k)

    def _start_drains(self, now: float, drains) -> None:
        for drain in drains:
            k = self.index[drain.node]
            assert self.nodes[k].schedulable and self.nodes[k].target is None
            self.nodes[k].target, self.nodes[k].drain_started = drain.to_tier, now
            self._touch(k)
            self.outcome.drains += 1

    def _place(self, now: float, i: int, tier: str) -> None:
        units = int(self.trace.units[i])
        per_gpu = TIERS[tier].units_per_gpu
        serving = [k for k, node in enumerate(self.nodes) if node.tier == tier and node.schedulable]
        fullest_first = -1 if self.config.bin_pack else 1
        serving.sort(key=lambda k: (self.nodes[k].target is not None, fullest_first * self.nodes[k].used))
        taken, left = [], units
        for k in serving:
            room = min(self.nodes[k].gpus * per_gpu - self.nodes[k].used, left)
            if room > 0:
                self.nodes[k].used += room
                self.nodes[k].ends = (self.nodes[k].ends or {}) | {i: now + float(self.trace.duration[i])}
                self._touch(k)
                taken.append((k, room))
                left -= room
            if not left:
                break
        assert left == 0, f"placement over-committed {tier}"
        self.pods[i] = taken
        self.reserved[tier] += units
        self.ran_on[i] = TIER_NAMES.index(tier)
        self.start[i] = now
        self._push(now + float(self.trace.duration[i]), _END, i)

    def _end(self, i: int) -> None:
        for k, units in self.pods.pop(i):
            self.nodes[k].used -= units
            del self.nodes[k].ends[i]
            self._touch(k)
        self.reserved[TIER_NAMES[self.ran_on[i]]] -= int(self.trace.units[i])

    def _moved(self, k: int) -> None:
        node = self.nodes[k]
        node.tier, node.target, node.drain_started = node.target, None, None
        node.schedulable, node.moving = True, False
        self._touch(k)

    def _expire(self, now: float) -> None:
        trace = self.trace
        kept = []
        for i in self.waiting:
            if trace.arrival[i] + trace.patience[i] < now:
                self.queued[TIER_NAMES[trace.tier[i]]] -= int(trace.units[i])
            else:
                kept.append(i)
        self.waiting = kept

    def _sweep(self, now: float) -> None:
        """Give every waiting request, oldest first, a new decision."""
        self._expire(now)
        # Per tier, the shortest duration refused so far for each lease size. Nothing changes
        # between two refusals in a sweep, so a request no smaller than one that could not be
        # placed (and no shorter, where draining nodes take short leases) cannot be placed
        # either, and is skipped. Requests past `priced_wait_s` are decided without prices, so
        # they are compared only with one another.
        blocked: dict[tuple[str, bool], dict[int, float]] = {}
        placed = set()
        trace = self.trace
        backfill = (
            {node.tier for node in self.nodes if node.target and node.used and not node.moving}
            if self.config.drain_backfill
            else set()
        )
        for i in self.waiting:
            tier, units = TIER_NAMES[trace.tier[i]], int(trace.units[i])
            duration = float(trace.duration[i]) if tier in backfill else 0.0
            key = (tier, self._priced(now, i))
            refused = blocked.get(key)
            if refused and any(u <= units and d <= duration for u, d in refused.items()):
                continue
            others = dict(self.queued)
            others[tier] -= units
            decision = self._decide(now, i, others)
            taken = self._taken(decision)
            if taken is not None:
                self._place(now, i, taken)
                placed.add(i)
                self.queued[tier] -= units
            else:
                self._act(now, decision)
                refused = blocked.setdefault(key, {})
                refused[units] = min(refused.get(units, duration), duration)
        if placed:
            self.waiting = [i for i in self.waiting if i not in placed]
        self._undrain()

    def _undrain(self) -> bool:
        if all(node.target is None or node.moving for node in self.nodes):
            return False  # nothing drains (a shortcut: stale_drains would say the same)
        stale = stale_drains(
            inventory=self.states,
            reservations=self.reserved,
            tiers=TIERS,
            waiting=self.queued,
            prices=self.prices,
        )
        for name in stale:
            self._give_back(self.index[name])
        return bool(stale)

    def _give_back(self, k: int) -> None:
        """Give a draining node back to its pool."""
        self.nodes[k].target, self.nodes[k].drain_started = None, None
        self._touch(k)


def simulate(trace: Trace, *, split: tuple[int, ...], config: ElasticConfig) -> Outcome:
    """Run the elastic policy over the trace from an initial split of nodes."""
    return ElasticSim(trace, split=split, config=config).run()
