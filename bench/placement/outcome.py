"""What a policy did with a trace, and the benchmark's metrics computed from it.

Every simulated policy returns an `Outcome`: when each request started (NaN: never placed)
and on which tier, the GPUs in use over time, moves made and decision latencies. `metrics`
turns it into one row of the JSON. Imported by the rest of bench.placement only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from bench.placement.traces import PER_GPU, Trace


@dataclass
class Outcome:
    """Start time per request (NaN: rejected), GPU use as a step function, moves, latencies;
    `ran_on`, the tier (index into TIER_NAMES) each request ran on, -1 if none (None: every
    request ran on the tier it asked for)."""

    start: np.ndarray
    use_times: np.ndarray
    use_gpus: np.ndarray
    ran_on: np.ndarray | None = None
    moves: int = 0
    drains: int = 0
    decision_ns: list[int] = field(default_factory=list)
    rebalance_ns: list[int] = field(default_factory=list)
    estimate_ns: list[int] = field(default_factory=list)


def use_from_starts(
    trace: Trace, start: np.ndarray, ran_on: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Return (times, GPUs in use from each time on) for requests run from `start` for their
    duration at the GPU cost of the tier they ran on (`ran_on`; None: the tier asked for)."""
    placed = ~np.isnan(start)
    cost = trace.units[placed] / PER_GPU[(trace.tier if ran_on is None else ran_on)[placed]]
    times = np.concatenate([start[placed], start[placed] + trace.duration[placed]])
    deltas = np.concatenate([cost, -cost])
    # At equal times ends come first: a lease placed when another ends takes its GPUs.
    order = np.lexsort((deltas, times))
    return times[order], np.cumsum(deltas[order])


def window(trace: Trace) -> tuple[float, float]:
    """Return the measured span: first measured arrival to last arrival (no drain-out tail)."""
    first = float(trace.arrival[np.argmax(trace.measured)])
    return first, float(trace.arrival[-1])


def mean_use(times: np.ndarray, gpus: np.ndarray, start: float, end: float) -> float:
    """Return the time-average of the step function (times, gpus) over [start, end)."""
    if end <= start or len(times) == 0:
        return 0.0
    edges = np.clip(np.append(times, end), start, end)
    return float(np.sum(gpus * np.diff(edges)) / (end - start))


def metrics(trace: Trace, outcome: Outcome) -> dict[str, float | int | None]:
    """Compute the JSON metrics of one run over the measured requests."""
    measured = trace.measured
    start = outcome.start[measured]
    placed = ~np.isnan(start)
    units = trace.units[measured]
    cost = trace.gpu_cost[measured]
    waits = (start - trace.arrival[measured])[placed]
    asked = trace.tier[measured]
    ran_on = asked if outcome.ran_on is None else outcome.ran_on[measured]
    begin, end = window(trace)
    latency = np.array(outcome.decision_ns, dtype=float) / 1e6
    return {
        "requests": int(measured.sum()),
        "acceptance": float(placed.mean()),
        "unit_acceptance": float(units[placed].sum() / units.sum()),
        "gpu_acceptance": float(cost[placed].sum() / cost.sum()),  # of the GPU cost asked
        "on_fallback": float(np.mean(ran_on[placed] != asked[placed])) if placed.any() else None,
        "utilization": mean_use(outcome.use_times, outcome.use_gpus, begin, end) / trace.gpus,
        "wait_p50_s": float(np.percentile(waits, 50)) if len(waits) else None,
        "wait_p95_s": float(np.percentile(waits, 95)) if len(waits) else None,
        "moves_per_100": 100.0 * outcome.moves / len(trace),
        "drains_per_100": 100.0 * outcome.drains / len(trace),
        "decision_p50_ms": float(np.percentile(latency, 50)) if len(latency) else None,
        "decision_p99_ms": float(np.percentile(latency, 99)) if len(latency) else None,
        "decisions": len(latency),
    }
