"""`gpulease demand`: what recent requests say each tier needs, and where a node is worth most.

The same estimate the placer prices node moves with (workflows.demand), from the leases
approved on the cluster recently, shown per tier next to the pool it has now: requests per
hour, lease size and duration, the GPUs its leases would hold with unlimited room, what the
pool accepts, and how many more requests per hour one more node (of the largest size of the
tier's GPU model in the cluster) in that pool would accept; and whether a tier is estimated
from all the requests in the window or, its mix having changed, from the recent ones alone.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import typer
from rich.table import Table

from config.policy import PolicyError
from config.settings import SettingsError, load_settings
from gpulease.cli_cluster import fail, read_nodes
from gpulease.cli_db import on_store
from gpulease.console import out
from gpulease.store_access import require_current
from gpulease.wiring import load_checked_policy
from leases.capacity import pool_capacity, tier_specs
from leases.rebalance import Demand
from leases.store import make_engine, session_scope
from workflows.demand import estimate_demand, recent_arrivals, window_of


def demand(
    policy_file: Path | None = typer.Option(None, "--policy", help="Overrides GPULEASE_POLICY_FILE."),
    cluster: str | None = typer.Option(None, help="Cluster of the policy (default: the first)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Show each tier's demand learned from recent requests, and what one more node is worth."""
    try:
        settings = load_settings()
        policy = load_checked_policy(policy_file or settings.policy_file)
    except (PolicyError, SettingsError) as exc:
        raise fail(str(exc)) from None
    try:
        name = policy.cluster(cluster).name
    except KeyError as exc:
        raise fail(str(exc.args[0])) from None
    with on_store(url=settings.database_url, doing="read recent requests from {store}"):
        require_current(settings.database_url)  # before the cluster is asked anything
    specs = tier_specs(policy)
    inventory = [r.state for r in read_nodes(None, name, policy)]
    capacity = pool_capacity(inventory=inventory, tiers=specs)
    placement = policy.placement
    now = datetime.now(UTC)
    with on_store(url=settings.database_url, doing="read recent requests from {store}"):
        engine = make_engine(settings.database_url)
        try:
            with session_scope(engine) as session:
                arrivals = recent_arrivals(session, cluster=name, since=now - window_of(placement))
        finally:
            engine.dispose()
    inputs = {"inventory": inventory, "tiers": specs, "now": now}
    in_force = placement.pricing and estimate_demand(arrivals, settings=placement, **inputs) is not None
    # What the estimate says today, even while it is still learning (it is not used then).
    learning = placement.model_copy(update={"demand_warmup": timedelta(0), "demand_min_requests": 0})
    valuation = estimate_demand(arrivals, settings=learning, **inputs) or Demand({})
    tiers = []
    for tier, spec in specs.items():
        units = capacity.get(tier, 0)
        estimate = valuation.tiers.get(tier)
        per_gpu = spec.units_per_gpu
        node_gpus = max((n.gpus for n in inventory if n.gpu_model == spec.gpu_model), default=8)
        more = node_gpus * per_gpu
        tiers.append(
            {
                "tier": tier,
                "requests": sum(1 for a in arrivals if a[0] == tier),
                "rate_per_h": round(estimate.rate_per_s * 3600, 3) if estimate else 0.0,
                "mean_units": round(sum(u * p for u, p in estimate.sizes), 2) if estimate else None,
                "mean_duration_h": round(estimate.mean_duration_s / 3600, 2) if estimate else None,
                "mix_changed": tier in valuation.recent,
                "offered_gpus": round(valuation.offered(tier) / per_gpu, 2),
                "pool_gpus": round(units / per_gpu, 2),
                "accepted_per_h": round(valuation.value(tier, units), 3),
                "node_gpus": node_gpus,
                "one_more_node_per_h": round(
                    valuation.value(tier, units + more) - valuation.value(tier, units), 4
                ),
            }
        )
    status = {
        "cluster": name,
        "pricing": placement.pricing,
        "in_force": in_force,
        "requests": len(arrivals),
        "min_requests": placement.demand_min_requests,
        "window_h": round(window_of(placement).total_seconds() / 3600, 1),
    }
    if as_json:
        print(json.dumps({"status": status, "tiers": tiers}))
        return
    if not placement.pricing:
        line = "pricing is off (placement.pricing): nodes move whenever a tier is short"
    elif in_force:
        line = f"prices in force, from {len(arrivals)} requests approved in the last {status['window_h']} h"
    else:
        line = (
            f"still learning: {len(arrivals)} requests seen (prices need {placement.demand_min_requests} over "
            f"{placement.demand_warmup}); the figures below are not used yet"
        )
    table = Table(title=f"demand on {name}: {line}")
    for column in (
        "tier",
        "requests",
        "per hour",
        "mean units",
        "mean hours",
        "GPUs asked",
        "GPUs in pool",
        "accepted per hour",
        "+1 node: more per hour",
        "from",
    ):
        table.add_column(column)
    for t in tiers:
        table.add_row(
            t["tier"],
            str(t["requests"]),
            f"{t['rate_per_h']:.2f}",
            "-" if t["mean_units"] is None else f"{t['mean_units']:.1f}",
            "-" if t["mean_duration_h"] is None else f"{t['mean_duration_h']:.1f}",
            f"{t['offered_gpus']:.1f}",
            f"{t['pool_gpus']:.1f}",
            f"{t['accepted_per_h']:.2f}",
            f"{t['one_more_node_per_h']:.3f} ({t['node_gpus']} GPUs)",
            "-" if t["mean_units"] is None else "recent (mix changed)" if t["mix_changed"] else "all",
        )
    out.print(table)
