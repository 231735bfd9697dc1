"""Fixed splits of nodes among tiers: `static` (best split in hindsight) and `first-fit` (even).

With a fixed split every tier is an independent pool, so each (tier, node count) pair is
simulated once and any split's result is a sum of table entries. The best split in hindsight
is then found exactly by dynamic programming over the table, not by local search.

When requesters accept fallback tiers, pools are no longer independent (a full pool sends
leases to its fallbacks): `simulate_split` runs every pool of a split together, and
`climb_split` searches splits locally from the DP's. Imported by bench.placement only.
"""

from __future__ import annotations

import heapq
import itertools
from collections import deque

import numpy as np

from bench.placement.outcome import Outcome, use_from_starts
from bench.placement.traces import GPUS_PER_NODE, TIER_NAMES, TIERS, Trace

_TIER_INDEX = {name: t for t, name in enumerate(TIER_NAMES)}


def simulate_pool(trace: Trace, indices: np.ndarray, capacity: int) -> np.ndarray:
    """Return start times (NaN: rejected) of one tier's requests on a pool of `capacity` units.

    Same discipline as the elastic simulation: a request that fits starts at once; the others
    wait oldest first, any waiting request that fits starts when units come back (backfill),
    and a request still waiting past its patience is rejected.
    """
    start = np.full(len(indices), np.nan)
    free = capacity
    ends: list[tuple[float, int]] = []
    waiting: deque[int] = deque()
    arrival, duration, patience, units = (
        trace.arrival[indices],
        trace.duration[indices],
        trace.patience[indices],
        trace.units[indices],
    )

    def admit(k: int, now: float) -> None:
        nonlocal free
        start[k] = now
        free -= int(units[k])
        heapq.heappush(ends, (now + float(duration[k]), int(units[k])))

    def release_until(now: float) -> None:
        nonlocal free
        while ends and ends[0][0] <= now:
            when, back = heapq.heappop(ends)
            free += back
            if waiting:
                # Drop the requests whose patience ran out before these units came back.
                for k in [k for k in waiting if arrival[k] + patience[k] < when]:
                    waiting.remove(k)
                for k in list(waiting):
                    if units[k] <= free:
                        waiting.remove(k)
                        admit(k, when)

    for k in range(len(indices)):
        now = float(arrival[k])
        release_until(now)
        if units[k] <= free:
            admit(k, now)
        elif units[k] <= capacity:
            waiting.append(k)
    release_until(np.inf)
    return start


def pool_table(
    trace: Trace, nodes: int, *, gpus_per_node: int = GPUS_PER_NODE
) -> tuple[np.ndarray, list[list[np.ndarray]]]:
    """Return accepted measured requests per (tier, node count 0..nodes of `gpus_per_node`
    GPUs) and the start times."""
    table = np.zeros((len(TIER_NAMES), nodes + 1))
    starts: list[list[np.ndarray]] = []
    for t, name in enumerate(TIER_NAMES):
        indices = np.flatnonzero(trace.tier == t)
        measured = trace.measured[indices]
        per_node = gpus_per_node * TIERS[name].units_per_gpu
        row: list[np.ndarray] = []
        for n in range(nodes + 1):
            if row and not np.isnan(row[-1]).any():
                row.append(row[-1])  # everything fits already; more nodes change nothing
            else:
                row.append(simulate_pool(trace, indices, n * per_node))
            table[t, n] = float((~np.isnan(row[-1]) & measured).sum())
        starts.append(row)
    return table, starts


def best_split(table: np.ndarray, nodes: int) -> tuple[int, ...]:
    """Return node counts per tier maximising accepted requests, using every node."""
    tiers = table.shape[0]
    best = np.full((tiers + 1, nodes + 1), -np.inf)
    choice = np.zeros((tiers + 1, nodes + 1), dtype=int)
    best[0, 0] = 0.0
    for t in range(tiers):
        for used in range(nodes + 1):
            for n in range(used + 1):
                value = best[t, used - n] + table[t, n]
                if value > best[t + 1, used]:
                    best[t + 1, used], choice[t + 1, used] = value, n
    split, used = [], nodes
    for t in range(tiers, 0, -1):
        split.append(int(choice[t, used]))
        used -= choice[t, used]
    return tuple(reversed(split))


def even_split(nodes: int) -> tuple[int, ...]:
    """Return an even split of nodes among tiers (the first tiers get the remainder)."""
    tiers = len(TIER_NAMES)
    return tuple(nodes // tiers + (1 if t < nodes % tiers else 0) for t in range(tiers))


def outcome_of_split(trace: Trace, starts: list[list[np.ndarray]], split: tuple[int, ...]) -> Outcome:
    """Assemble the whole trace's outcome from the per-tier simulations of a split."""
    start = np.full(len(trace), np.nan)
    for t, n in enumerate(split):
        start[trace.tier == t] = starts[t][n]
    times, gpus = use_from_starts(trace, start)
    return Outcome(start=start, use_times=times, use_gpus=gpus)


def simulate_split(
    trace: Trace, split: tuple[int, ...], *, accept_fallback: bool, gpus_per_node: int = GPUS_PER_NODE
) -> Outcome:
    """Run every pool of a fixed split together; requesters accept their tier's fallbacks
    when `accept_fallback`.

    The discipline of elastic.ElasticSim with moves off (ElasticConfig(moves=False)): a request
    goes to its tier if it has room, else to its first fallback with room (within that tier's
    max_units), else waits; waiting requests, oldest first, try again whenever a lease ends,
    and leave when their patience runs out. Pods may span nodes, so a pool is just its free
    units: the same starts as the node-level simulation (the tests check it), many times faster,
    which the split search needs.
    """
    free = [n * gpus_per_node * TIERS[name].units_per_gpu for name, n in zip(TIER_NAMES, split, strict=True)]
    max_units = [TIERS[name].max_units for name in TIER_NAMES]
    choices = [
        (t, *(_TIER_INDEX[f] for f in TIERS[name].fallback if accept_fallback))
        for t, name in enumerate(TIER_NAMES)
    ]
    arrival, duration = trace.arrival.tolist(), trace.duration.tolist()
    deadline = (trace.arrival + trace.patience).tolist()
    tier, units = trace.tier.tolist(), trace.units.tolist()
    start = np.full(len(trace), np.nan)
    ran_on = np.full(len(trace), -1)
    ends: list[tuple[float, int]] = []
    waiting: list[int] = []

    def admit(i: int, now: float) -> bool:
        for t in choices[tier[i]]:
            if free[t] >= units[i] and units[i] <= max_units[t]:
                free[t] -= units[i]
                start[i], ran_on[i] = now, t
                heapq.heappush(ends, (now + duration[i], i))
                return True
        return False

    def end_one() -> None:
        nonlocal waiting
        now, j = heapq.heappop(ends)
        free[ran_on[j]] += units[j]
        # A request no smaller than one of its tier refused in this sweep is refused too.
        refused: dict[int, int] = {}
        kept = []
        for i in waiting:
            if deadline[i] < now:
                continue
            if units[i] >= refused.get(tier[i], 1 << 30) or not admit(i, now):
                refused[tier[i]] = min(units[i], refused.get(tier[i], 1 << 30))
                kept.append(i)
        waiting = kept

    for i in range(len(trace)):
        # At equal times an arrival comes first, as in the node-level simulation.
        while ends and ends[0][0] < arrival[i]:
            end_one()
        if not admit(i, arrival[i]):
            waiting.append(i)
    while ends:
        end_one()
    times, gpus = use_from_starts(trace, start, ran_on)
    return Outcome(start=start, use_times=times, use_gpus=gpus, ran_on=ran_on)


def climb_split(
    trace: Trace, split: tuple[int, ...], *, rounds: int = 4, gpus_per_node: int = GPUS_PER_NODE
) -> tuple[tuple[int, ...], Outcome]:
    """Return a good fixed split, and its outcome, when requesters accept fallbacks: a local
    optimum, not the best split in hindsight.

    From `split` (the DP's best without fallbacks), try every move of one node between two
    tiers (20 neighbours on 5 tiers), take the one accepting the most measured requests if it
    beats the current split, and repeat, at most `rounds` times.
    """

    def accepted(outcome: Outcome) -> int:
        return int((~np.isnan(outcome.start) & trace.measured).sum())

    tried = {split: simulate_split(trace, split, accept_fallback=True, gpus_per_node=gpus_per_node)}
    best = split
    for _ in range(rounds):
        neighbours = []
        for a, b in itertools.permutations(range(len(best)), 2):
            if best[a] > 0:
                moved = list(best)
                moved[a], moved[b] = moved[a] - 1, moved[b] + 1
                neighbours.append(tuple(moved))
        for candidate in neighbours:
            if candidate not in tried:
                tried[candidate] = simulate_split(
                    trace, candidate, accept_fallback=True, gpus_per_node=gpus_per_node
                )
        top = max(neighbours, key=lambda s: accepted(tried[s]))
        if accepted(tried[top]) <= accepted(tried[best]):
            break
        best = top
    return best, tried[best]
