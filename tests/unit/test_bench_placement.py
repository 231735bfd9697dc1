"""Smoke test of the placement benchmark's pieces on small traces (not a timed test)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from rich.progress import Progress

from bench.placement.__main__ import (
    PLOTTED,
    Plan,
    Sim,
    group,
    jobs_of,
    run_jobs,
    run_trace,
    seed_means,
    targets,
)
from bench.placement.bound import node_bound, upper_bound
from bench.placement.elastic import ElasticConfig, ElasticSim, simulate
from bench.placement.outcome import mean_use, metrics, use_from_starts
from bench.placement.plot import plot_utilisation
from bench.placement.static import (
    best_split,
    climb_split,
    even_split,
    outcome_of_split,
    pool_table,
    simulate_split,
)
from bench.placement.traces import MIXES, TIER_NAMES, TIERS, Trace, TraceConfig, generate

SMALL = TraceConfig(requests=600)


@pytest.fixture(scope="module")
def trace():
    return generate(mix="shifting", load=0.9, gpus=3 * 8, seed=7, config=SMALL)


def test_traces_are_seeded_and_offer_the_asked_load():
    a = generate(mix="balanced", load=0.7, gpus=64, seed=1, config=TraceConfig(requests=4000))
    b = generate(mix="balanced", load=0.7, gpus=64, seed=1, config=TraceConfig(requests=4000))
    assert np.array_equal(a.arrival, b.arrival) and np.array_equal(a.tier, b.tier)
    assert np.all(np.diff(a.arrival) >= 0) and np.all(a.patience < a.duration)
    offered = float(np.sum(a.gpu_cost * a.duration)) / float(a.arrival[-1] - a.arrival[0]) / a.gpus
    assert offered == pytest.approx(0.7, rel=0.15)
    assert set(MIXES) == {"small-heavy", "balanced", "large-heavy", "adversarial", "shifting"}


def test_shifting_changes_its_mix_halfway():
    t = generate(mix="shifting", load=0.9, gpus=64, seed=3, config=TraceConfig(requests=4000))
    full = TIER_NAMES.index("h100-full")
    first, second = t.tier[:2000], t.tier[2000:]
    assert np.mean(first == full) < 0.1 < 0.4 < np.mean(second == full)


def test_best_split_is_the_best_of_every_split(trace):
    nodes = 3
    table, starts = pool_table(trace, nodes)
    split = best_split(table, nodes)
    assert sum(split) == nodes
    every = [s for s in itertools.product(range(nodes + 1), repeat=5) if sum(s) == nodes]
    accepted = {s: sum(table[t, n] for t, n in enumerate(s)) for s in every}
    assert accepted[split] == max(accepted.values())
    # The table agrees with the assembled outcome of that split.
    outcome = outcome_of_split(trace, starts, split)
    placed = ~np.isnan(outcome.start) & trace.measured
    assert placed.sum() == accepted[split]


def _check_schedule(trace, outcome):
    placed = ~np.isnan(outcome.start)
    wait = outcome.start[placed] - trace.arrival[placed]
    assert np.all(wait >= 0) and np.all(wait <= trace.patience[placed] + 1e-6)
    times, gpus = use_from_starts(trace, outcome.start)
    assert np.all(gpus <= trace.gpus + 1e-9), "more GPUs reserved than the cluster has"


def test_every_policy_respects_arrival_patience_and_cluster_size(trace):
    nodes = 3
    table, starts = pool_table(trace, nodes)
    static = outcome_of_split(trace, starts, best_split(table, nodes))
    first_fit = outcome_of_split(trace, starts, even_split(nodes))
    elastic = simulate(trace, split=even_split(nodes), config=ElasticConfig(move_time_s=300.0))
    unpriced = simulate(
        trace,
        split=even_split(nodes),
        config=ElasticConfig(priced=False, proactive=False, drain_backfill=False),
    )
    for outcome in (static, first_fit, elastic, unpriced):
        _check_schedule(trace, outcome)
    assert elastic.moves > 0 and len(elastic.decision_ns) >= len(trace)
    # Priced: demand is estimated now and then (never before `learn_s` of arrivals), and idle
    # nodes are rebalanced after events; unpriced, neither happens.
    assert elastic.estimate_ns and elastic.rebalance_ns
    assert len(elastic.estimate_ns) <= (trace.arrival[-1] - trace.arrival[0]) / 900 + 1
    assert not unpriced.estimate_ns and not unpriced.rebalance_ns
    bound, whole = upper_bound(trace), node_bound(trace, nodes=nodes)
    assert whole.acceptance <= bound.acceptance + 1e-9
    for outcome in (static, first_fit, elastic):
        measured = metrics(trace, outcome)
        assert measured["acceptance"] <= whole.acceptance + 1e-9
        assert measured["unit_acceptance"] <= bound.unit_acceptance + 1e-9
    assert upper_bound(trace, integer=False).acceptance >= bound.acceptance - 1e-9


def test_bound_counts_overlapping_cores_against_the_cluster():
    # Two whole-GPU requests of 8 GPUs on an 8-GPU cluster, overlapping in their cores: one fits.
    t = generate(
        mix="large-heavy", load=0.5, gpus=8, seed=2, config=TraceConfig(requests=2, warmup_fraction=0)
    )
    t.tier[:] = TIER_NAMES.index("h100-full")
    t.units[:] = 8
    t.arrival[:] = [0.0, 10.0]
    t.duration[:] = [1000.0, 1000.0]
    t.patience[:] = [100.0, 100.0]
    assert upper_bound(t).acceptance == pytest.approx(0.5)
    t.arrival[1] = 2000.0  # no overlap: both fit
    assert upper_bound(t).acceptance == pytest.approx(1.0)


def test_node_bound_gives_every_tier_running_at_once_its_own_node():
    # One node of 8 H100s; a 1g.10gb lease and a whole-GPU lease overlap in their cores. Pooled,
    # they cost 1/7 + 1 of 8 GPUs and both fit; with whole nodes each tier needs the only node.
    t = generate(mix="balanced", load=0.5, gpus=8, seed=2, config=TraceConfig(requests=2, warmup_fraction=0))
    t.tier[:] = [TIER_NAMES.index("h100-1g"), TIER_NAMES.index("h100-full")]
    t.units[:] = 1
    t.arrival[:] = [0.0, 10.0]
    t.duration[:] = [1000.0, 1000.0]
    t.patience[:] = [100.0, 100.0]
    assert upper_bound(t).acceptance == pytest.approx(1.0)
    whole = node_bound(t, nodes=1)
    assert whole.acceptance == pytest.approx(0.5) and whole.unit_acceptance is None
    assert node_bound(t, nodes=2).acceptance == pytest.approx(1.0)
    t.arrival[1] = 2000.0  # one after the other: the node changes tier in between
    assert node_bound(t, nodes=1).acceptance == pytest.approx(1.0)
    # Same tier: the node holds both as long as their units fit (8 of 8 whole GPUs).
    t.arrival[1] = 10.0
    t.tier[:] = TIER_NAMES.index("h100-full")
    t.units[:] = [4, 4]
    assert node_bound(t, nodes=1).acceptance == pytest.approx(1.0)
    t.units[:] = [4, 5]
    assert node_bound(t, nodes=1).acceptance == pytest.approx(0.5)


def test_metrics_and_mean_use():
    assert mean_use(np.array([0.0, 10.0]), np.array([4.0, 0.0]), 0.0, 20.0) == pytest.approx(2.0)
    t = generate(mix="balanced", load=0.5, gpus=16, seed=5, config=SMALL)
    outcome = simulate(t, split=even_split(2), config=ElasticConfig())
    row = metrics(t, outcome)
    for key in ("acceptance", "unit_acceptance", "utilization", "wait_p50_s", "wait_p95_s", "moves_per_100"):
        assert row[key] is not None
    assert 0 < row["utilization"] <= 1 and row["decision_p99_ms"] >= row["decision_p50_ms"]


def test_targets_read_the_rows():
    def row(policy, acceptance, mix="shifting", load=0.9, scenario="asked-tier"):
        return {
            "cluster": "M",
            "scenario": scenario,
            "mix": mix,
            "load": load,
            "policy": policy,
            "acceptance": acceptance,
        }

    checks = targets(
        [row("elastic", 0.9), row("static", 0.75), row("elastic", 0.8, load=0.7), row("bound", 1.0, load=0.7)]
    )
    assert "M_elastic_over_node_bound_at_0.7" not in checks
    with_nodes = targets([row("elastic", 0.8, load=0.7), row("node-bound", 0.96, load=0.7)])
    assert with_nodes["M_elastic_over_node_bound_at_0.7"] == {"shifting": 0.8333}
    assert checks["M_shifting_0.9_elastic_over_static_ge_1.15"] == {"ratio": 1.2, "met": True}
    assert checks["M_elastic_over_bound_at_0.7_ge_0.9"]["shifting"] == {"ratio": 0.8, "met": False}
    assert "fallback" not in checks
    # Each scenario is checked against its own rows; asked-tier keeps the top-level names.
    fallback = [row("elastic", 0.6, scenario="fallback"), row("static", 0.8, scenario="fallback")]
    checks = targets([row("elastic", 0.9), row("static", 0.75), *fallback])
    assert checks["M_shifting_0.9_elastic_over_static_ge_1.15"] == {"ratio": 1.2, "met": True}
    assert checks["fallback"]["M_shifting_0.9_elastic_over_static_ge_1.15"] == {"ratio": 0.75, "met": False}
    # Rebalancing is held to the decision latency limit; the background estimate only shown.
    latency = {
        "cluster": "L",
        "scenario": "asked-tier",
        "mix": "balanced",
        "load": 0.9,
        "policy": "elastic",
        "acceptance": 1.0,
    }
    fast = latency | {"decision_p99_ms": 1.0, "rebalance_p99_ms": 2.0, "estimate_p99_ms": 50.0}
    slow = latency | {"decision_p99_ms": 1.0, "rebalance_p99_ms": 6.0, "estimate_p99_ms": 1.0}
    assert targets([fast])["L_decision_p99_ms_le_5"] == {
        "worst_p99_ms": 1.0,
        "met": True,
        "worst_rebalance_p99_ms": 2.0,
        "worst_estimate_p99_ms": 50.0,
    }
    assert targets([slow])["L_decision_p99_ms_le_5"]["met"] is False


def test_plot_writes_a_png(tmp_path, trace):
    outcome = simulate(trace, split=even_split(3), config=ElasticConfig())
    path = plot_utilisation(trace=trace, outcomes={"elastic": outcome}, path=tmp_path / "u.png", title="t")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _trace(requests: list[tuple[float, float, str, int]], *, nodes: int) -> Trace:
    """A hand-made trace of (arrival, duration, tier, units), every request measured, patience
    a quarter of its duration."""
    arrival, duration, tier, units = (np.array(column) for column in zip(*requests, strict=True))
    return Trace(
        mix="hand-made",
        load=0.0,
        gpus=nodes * 8,
        arrival=arrival.astype(float),
        duration=duration.astype(float),
        patience=0.25 * duration.astype(float),
        tier=np.array([TIER_NAMES.index(t) for t in tier]),
        units=units.astype(np.int64),
        measured=np.ones(len(requests), dtype=bool),
    )


# One 1g node (56 units) and one 2g node (24 units): a 2g lease keeps the 2g node busy (so it
# cannot move), 14 leases of 4 units fill the 1g node, then a 1g lease of 2 units arrives.
_FULL_1G = [(0.0, 1000.0, "h100-2g", 1)] + [(1.0 + k, 1000.0, "h100-1g", 4) for k in range(14)]
_FULL_1G += [(20.0, 1000.0, "h100-1g", 2)]


def test_a_full_tier_sends_a_requester_who_accepts_to_the_fallback_and_takes_it_back():
    t = _trace(_FULL_1G, nodes=2)
    split = (1, 1, 0, 0, 0)
    asked = simulate(t, split=split, config=ElasticConfig())
    assert np.isnan(asked.start[-1]), "without fallbacks, the last lease waits out its patience"
    sim = ElasticSim(t, split=split, config=ElasticConfig(accept_fallback=True))
    outcome = sim.run()
    assert outcome.start[-1] == 20.0 and TIER_NAMES[outcome.ran_on[-1]] == "h100-2g"
    assert outcome.moves == 0 and not np.isnan(outcome.start).any()
    # Everything ended: every reservation and pod was given back to the tier it was on.
    assert sim.reserved == dict.fromkeys(TIER_NAMES, 0)
    assert all(node.used == 0 and not node.ends for node in sim.nodes)
    # GPU use at the cost of the tier used: 2 units of 2g are 2/3 GPU, not 2/7.
    assert outcome.use_gpus.max() == pytest.approx(1 / 3 + 14 * 4 / 7 + 2 / 3)
    measured = metrics(t, outcome)
    assert measured["on_fallback"] == pytest.approx(1 / 16)
    assert measured["gpu_acceptance"] == 1.0  # of the GPU cost asked
    # The fixed-split simulation places it the same way.
    fixed = simulate_split(t, split, accept_fallback=True)
    assert np.array_equal(fixed.start, outcome.start) and np.array_equal(fixed.ran_on, outcome.ran_on)


def test_fallbacks_never_give_less_than_asked():
    for spec in TIERS.values():
        for name in spec.fallback:
            assert TIERS[name].gpu_cost(1) >= spec.gpu_cost(1)


def test_a_fixed_split_never_moves_and_the_fast_simulation_agrees(trace):
    nodes, split = 3, (1, 0, 1, 0, 1)
    table, starts = pool_table(trace, nodes)
    for accept in (False, True):
        sim = ElasticSim(trace, split=split, config=ElasticConfig(moves=False, accept_fallback=accept))
        tiers = [node.tier for node in sim.nodes]
        outcome = sim.run()
        assert outcome.moves == outcome.drains == 0 and not outcome.rebalance_ns and not outcome.estimate_ns
        assert [node.tier for node in sim.nodes] == tiers
        _check_schedule(trace, outcome)
        fast = simulate_split(trace, split, accept_fallback=accept)
        assert np.array_equal(fast.start, outcome.start, equal_nan=True)
        assert np.array_equal(fast.ran_on, outcome.ran_on)
        assert (outcome.ran_on != trace.tier)[~np.isnan(outcome.start)].any() == accept
    # Without fallbacks, the pools are independent: the same starts as the per-tier table.
    independent = outcome_of_split(trace, starts, split)
    assert np.array_equal(
        simulate_split(trace, split, accept_fallback=False).start, independent.start, equal_nan=True
    )


def test_the_split_search_with_fallbacks_ends_no_worse_than_it_starts_at_a_local_optimum(trace):
    nodes = 3

    def accepted(outcome):
        return int((~np.isnan(outcome.start) & trace.measured).sum())

    for start in (best_split(pool_table(trace, nodes)[0], nodes), (3, 0, 0, 0, 0)):
        split, outcome = climb_split(trace, start, rounds=20)
        assert sum(split) == nodes
        assert accepted(outcome) >= accepted(simulate_split(trace, start, accept_fallback=True))
        assert np.array_equal(
            outcome.start, simulate_split(trace, split, accept_fallback=True).start, equal_nan=True
        )
        for a, b in itertools.permutations(range(5), 2):
            if split[a]:
                moved = list(split)
                moved[a], moved[b] = moved[a] - 1, moved[b] + 1
                assert accepted(simulate_split(trace, tuple(moved), accept_fallback=True)) <= accepted(
                    outcome
                )
        # From a local optimum, it stays.
        assert climb_split(trace, split, rounds=1)[0] == split
    # All on 1g, whose requests have no room elsewhere: the climb must move nodes away.
    assert climb_split(trace, (3, 0, 0, 0, 0))[0] != (3, 0, 0, 0, 0)


def test_rows_carry_their_scenario():
    t = generate(mix="balanced", load=0.9, gpus=16, seed=4, config=TraceConfig(requests=300))
    results = run_trace(t, nodes=2, with_node_bound=True)
    grouped: dict = {}
    group(grouped, "M", "balanced", 0.9, results)
    found = {(r["scenario"], r["policy"]) for r in seed_means(grouped)}
    assert found == {
        (s, p) for s in ("asked-tier", "fallback") for p in ("bound", "static", "elastic", "first-fit")
    } | {("asked-tier", "node-bound")}
    # The bound is the same in both; the fallback-scenario policies use fallbacks.
    assert results["asked-tier", "bound"][0] == results["fallback", "bound"][0]
    assert results["asked-tier", "elastic"][0]["on_fallback"] == 0.0
    assert results["fallback", "static"][0]["on_fallback"] > 0.0
    only = run_trace(t, nodes=2, scenarios=("asked-tier",))
    assert {scenario for scenario, _ in only} == {"asked-tier"}


def test_parallel_runs_give_the_same_results_as_one_process():
    plan = Plan(
        seeds={"M": 1, "L": 0},
        requests={"M": 300, "L": 300},
        loads={"M": (0.9,), "L": ()},
        fallback={"M": (0.9,)},
        node_bound={"M": (0.9,)},
        xl_traces=(("shifting", 1.1),),
        xl_requests=200,
    )
    jobs = jobs_of(plan)
    assert jobs[0].cluster == "XL" and len(jobs) == 1 + len(MIXES) and PLOTTED in jobs

    def rows(workers: int) -> list:
        with Progress(disable=True) as progress:
            finished = run_jobs(jobs, plan, sim=Sim(), workers=workers, progress=progress)
        assert [job for job, _, _ in finished] == jobs
        # Latencies differ from run to run; everything else must not.
        timed = {"decision_p50_ms", "decision_p99_ms", "rebalance_p50_ms", "rebalance_p99_ms"}
        timed |= {"estimate_p50_ms", "estimate_p99_ms"}
        out = []
        for job, results, trace in finished:
            assert (trace is not None) == (job == PLOTTED)
            if job.cluster == "XL":
                out.append({k: v for k, v in results.items() if k not in timed})
                continue
            for key, (measured, _) in sorted(results.items()):
                out.append((job, key, {k: v for k, v in measured.items() if k not in timed}))
        return out

    assert rows(2) == rows(1)


def test_pods_are_spread_by_default_and_packed_with_bin_pack():
    t = _trace([(0.0, 1000.0, "h100-full", 2), (1.0, 1000.0, "h100-full", 2)], nodes=2)
    for bin_pack, expected in ((False, [2, 2]), (True, [4, 0])):
        sim = ElasticSim(t, split=(0, 0, 0, 0, 2), config=ElasticConfig(bin_pack=bin_pack, priced=False))
        for i in range(2):
            sim._place(float(t.arrival[i]), i, "h100-full")
        assert sorted((node.used for node in sim.nodes), reverse=True) == expected


def test_smaller_nodes_keep_the_gpus_and_move_in_their_own_size():
    t = _trace([(0.0, 1000.0, "h100-full", 4), (1.0, 1000.0, "h100-full", 4)], nodes=1)
    sim = ElasticSim(t, split=(0, 0, 0, 0, 2), config=ElasticConfig(gpus_per_node=4, priced=False))
    assert [state.gpus for state in sim.states] == [4, 4]
    assert [state.allocatable_gpu for state in sim.states] == [4, 4]
    for i in range(2):
        sim._place(float(t.arrival[i]), i, "h100-full")
    assert sorted(node.used for node in sim.nodes) == [4, 4]
    assert Sim(gpus_per_node=4).nodes("M") == 16 and Sim(gpus_per_node=1).nodes("XL") == 2048


def test_a_split_of_big_nodes_is_one_of_small_nodes_too(trace):
    # Two 4-GPU nodes hold what one 8-GPU node holds, so the best split of small nodes accepts
    # at least as many requests as that of big ones, and both use every GPU of the cluster.
    big, big_starts = pool_table(trace, 3)
    small, small_starts = pool_table(trace, 6, gpus_per_node=4)
    big_split, small_split = best_split(big, 3), best_split(small, 6)
    assert sum(small_split) == 6
    halved = tuple(2 * n for n in big_split)
    for t in range(len(TIER_NAMES)):
        assert np.array_equal(small_starts[t][halved[t]], big_starts[t][big_split[t]], equal_nan=True)
    accepted = [
        int((~np.isnan(outcome_of_split(trace, starts, split).start) & trace.measured).sum())
        for starts, split in ((big_starts, big_split), (small_starts, small_split))
    ]
    assert accepted[1] >= accepted[0]
    fixed = simulate_split(trace, small_split, accept_fallback=False, gpus_per_node=4)
    assert np.array_equal(
        fixed.start, outcome_of_split(trace, small_starts, small_split).start, equal_nan=True
    )
    assert node_bound(trace, nodes=6, gpus_per_node=4).acceptance >= accepted[1] / trace.measured.sum() - 1e-9
