"""Fixed splits of nodes among tiers: `static` (best split in hindsight) and `first-fit` (even).

With a fixed split every tier is an independent pool, so each (tier, node count) pair is
simulated once and any split's result is a sum of table entries. The best split in hindsight
is then found exactly by dynamic programming over the table, not by local search. Imported by
bench.placement only.
"""

from __future__ import annotations

import heapq
from collections import deque

import numpy as np

from bench.placement.outcome import Outcome, use_from_starts
from bench.placement.traces import GPUS_PER_NODE, TIER_NAMES, TIERS, Trace


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


def pool_table(trace: Trace, nodes: int) -> tuple[np.ndarray, list[list[np.ndarray]]]:
    """Return accepted measured requests per (tier, node count 0..nodes) and the start times."""
    table = np.zeros((len(TIER_NAMES), nodes + 1))
    starts: list[list[np.ndarray]] = []
    for t, name in enumerate(TIER_NAMES):
        indices = np.flatnonzero(trace.tier == t)
        measured = trace.measured[indices]
        per_node = GPUS_PER_NODE * TIERS[name].units_per_gpu
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
