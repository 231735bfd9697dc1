"""Upper bounds on the requests any policy could accept, from hindsight LPs/ILPs.

`upper_bound` (the benchmark's `bound`). Relaxation, and why it stays an upper bound:
- Pooled GPUs. A request of u units of a tier with k units per GPU uses u/k of a GPU. Any real
  placement puts every running lease on nodes of its tier, and no node serves two tiers, so at
  every instant the GPU cost of running leases is at most the cluster's GPUs. Node
  boundaries, reconfiguration time and drains only remove schedules, never add any.
- Fallbacks. When requesters accept fallback tiers, a lease may run on another tier than it
  asked for, but every fallback costs at least the asked GPUs (traces.TIERS): the asked
  cost u/k is at most what the lease really holds, so every real schedule still meets the
  pooled constraint at asked cost, and the same bound holds in the fallback scenario.
- Flexible starts. A request may start anywhere in [arrival, arrival + patience], so it is
  surely running during its core [arrival + patience, arrival + duration) whatever the
  policy. Constraining only the cores is weaker than constraining real run times, so every
  real schedule satisfies it.
- Constraints at the left end of every maximal set of overlapping cores suffice: the load
  of cores is piecewise constant and peaks just after a core starts. Keeping only some of
  those rows (for big traces) drops constraints and keeps an upper bound.
- The LP relaxation (0 ≤ x ≤ 1) of the 0/1 choice is ≥ the ILP optimum; when the ILP is run,
  its dual bound (not its incumbent) is used, which is ≥ the optimum too.
Maximising measured accepted requests, then separately measured accepted units, gives bounds
on `acceptance` and `unit_acceptance`.

`node_bound` (the benchmark's `node-bound`, asked-tier scenario only) keeps node boundaries:
at every instant each node serves one tier or none, so the units of a tier running then are
at most its units per node times a whole number of nodes, and those numbers sum to at most the
cluster's nodes. Nodes may change tier at any instant, for free and with leases on them: no
drain, no reconfiguration time. Cores, the rows and the dual bound are as above, so it is an
upper bound on any policy that serves each request on its asked tier (not with fallbacks: a
lease on a fallback needs no node of its asked tier), and at most `upper_bound`, since summing
its node constraints gives the pooled one. What lies between it and a policy is the price of
draining and of not knowing the future; what lies between it and `upper_bound`, the price of
whole nodes. Imported by bench.placement only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, milp
from scipy.sparse import csr_matrix, hstack, identity, vstack

from bench.placement.traces import GPUS_PER_NODE, PER_GPU, TIER_NAMES, Trace


@dataclass(frozen=True)
class BoundResult:
    """Upper bounds on acceptance and unit acceptance, and how they were obtained."""

    acceptance: float
    unit_acceptance: float | None  # None: not computed (node_bound)
    method: str
    rows: int


def _rows(begin: np.ndarray, end: np.ndarray, max_rows: int | None) -> csr_matrix:
    """Return the 0/1 matrix: a row per maximal set of overlapping cores, a column per core."""
    order = np.argsort(begin, kind="stable")
    sorted_begin = begin[order]
    sorted_end = np.sort(end)
    # A core start is the left end of a maximal set when some core ends before the next start
    # (else the next start's set contains this one); the last start always is.
    next_begin = np.append(sorted_begin[1:], np.inf)
    ended_before = np.searchsorted(sorted_end, sorted_begin, side="right")
    ended_by_next = np.searchsorted(sorted_end, next_begin, side="right")
    points = sorted_begin[ended_by_next > ended_before]
    if max_rows is not None and len(points) > max_rows:
        # Dropping constraints only loosens the bound; it stays an upper bound.
        points = points[np.linspace(0, len(points) - 1, max_rows).astype(int)]
    indptr, columns = [0], []
    for point in points:
        started = order[: np.searchsorted(sorted_begin, point, side="right")]
        active = np.sort(started[end[started] > point])
        columns.append(active)
        indptr.append(indptr[-1] + len(active))
    indices = np.concatenate(columns) if columns else np.empty(0, dtype=np.int64)
    return csr_matrix((np.ones(len(indices)), indices, np.array(indptr)), shape=(len(points), len(begin)))


def upper_bound(
    trace: Trace, *, integer: bool = True, time_limit_s: float = 20.0, max_rows: int | None = None
) -> BoundResult:
    """Bound acceptance and unit acceptance of any policy on the trace, in hindsight."""
    begin = trace.arrival + trace.patience
    end = trace.arrival + trace.duration
    # Requests without a core (patience >= duration) are unconstrained: any policy might
    # accept them, so the bound does.
    cored = end > begin
    columns = np.flatnonzero(cored)
    pattern = _rows(begin[cored], end[cored], max_rows)
    matrix = pattern.multiply(trace.gpu_cost[cored][np.newaxis, :]).tocsr()
    constraint = LinearConstraint(matrix, -np.inf, float(trace.gpus))
    method = "ilp-dual-bound" if integer else "lp"
    results = []
    for weight in (np.ones(len(trace)), trace.units.astype(float)):
        objective = np.where(trace.measured, weight, 0.0)
        best, limited = _maximise(
            objective[columns],
            constraint,
            upper=np.ones(len(columns)),
            integrality=np.ones(len(columns)) if integer else None,
            time_limit_s=time_limit_s,
        )
        if limited:
            method = "ilp-dual-bound (time limit)"
        results.append((best + float(objective[~cored].sum())) / float(objective.sum()))
    return BoundResult(
        acceptance=min(1.0, results[0]),
        unit_acceptance=min(1.0, results[1]),
        method=method,
        rows=pattern.shape[0],
    )


def node_bound(
    trace: Trace, *, nodes: int, gpus_per_node: int = GPUS_PER_NODE, time_limit_s: float = 20.0
) -> BoundResult:
    """Bound the acceptance of any policy serving asked tiers on `nodes` whole nodes of
    `gpus_per_node` GPUs, in hindsight (module docstring)."""
    begin = trace.arrival + trace.patience
    end = trace.arrival + trace.duration
    cored = end > begin
    columns = np.flatnonzero(cored)
    pattern = _rows(begin[cored], end[cored], None)
    points, tiers = pattern.shape[0], len(TIER_NAMES)
    per_node = gpus_per_node * PER_GPU
    tier, units = trace.tier[cored], trace.units[cored].astype(float)
    # Variables: x (one per cored request), then n[t, p] (nodes of tier t at point p), tier-major.
    # Rows: per tier and point, units running <= per_node[t] * n[t, p]; per point, sum of n <= nodes.
    blocks = []
    for t in range(tiers):
        load = pattern.multiply(np.where(tier == t, units, 0.0)[np.newaxis, :]).tocsr()
        room = csr_matrix(
            (np.full(points, -per_node[t]), (np.arange(points), t * points + np.arange(points))),
            shape=(points, tiers * points),
        )
        blocks.append(hstack([load, room]))
    blocks.append(hstack([csr_matrix((points, len(columns))), hstack([identity(points)] * tiers)]))
    matrix = vstack(blocks).tocsr()
    upper = np.concatenate([np.zeros(tiers * points), np.full(points, float(nodes))])
    constraint = LinearConstraint(matrix, -np.inf, upper)
    objective = np.where(trace.measured, 1.0, 0.0)
    best, limited = _maximise(
        np.concatenate([objective[columns], np.zeros(tiers * points)]),
        constraint,
        upper=np.concatenate([np.ones(len(columns)), np.full(tiers * points, float(nodes))]),
        integrality=np.ones(len(columns) + tiers * points),
        time_limit_s=time_limit_s,
    )
    return BoundResult(
        acceptance=min(1.0, (best + float(objective[~cored].sum())) / float(objective.sum())),
        unit_acceptance=None,
        method="ilp-dual-bound (time limit)" if limited else "ilp-dual-bound",
        rows=matrix.shape[0],
    )


def _maximise(
    objective: np.ndarray,
    constraint: LinearConstraint,
    *,
    upper: np.ndarray,
    integrality: np.ndarray | None,
    time_limit_s: float,
) -> tuple[float, bool]:
    """Maximise objective·x over 0 <= x <= upper; return an upper bound on the optimum (the
    dual bound of an ILP, the optimum of an LP) and whether the time limit stopped the search."""
    res = milp(
        -objective,
        constraints=[constraint],
        bounds=Bounds(0.0, upper),
        integrality=integrality,
        options={"time_limit": time_limit_s, "disp": False},
    )
    if res.status not in (0, 1) or res.x is None:
        raise RuntimeError(f"bound: the solver failed: {res.message}")
    if integrality is None:
        return -float(res.fun), False
    # The ILP's dual bound, not its incumbent: it is >= the optimum even when the time
    # limit stopped the search, so it stays an upper bound.
    return -float(res.mip_dual_bound), res.status == 1
