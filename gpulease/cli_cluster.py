"""`gpulease inventory`: what the GPU nodes of a cluster serve, and why some serve nothing."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import typer
from kubernetes.config.config_exception import ConfigException
from rich.markup import escape
from rich.table import Table

from config.policy import PolicyError
from config.settings import SettingsError, load_settings
from gpulease.console import err, out
from gpulease.wiring import load_checked_policy
from leases.capacity import assess_nodes, tier_specs
from leases.errors import InfrastructureError
from leases.inventory import NodeReading, draining_since, read_inventory
from provisioners.inventory import read_cluster
from provisioners.kube.client import make_api_client
from provisioners.kube.retry import retry_policy


def fail(message: str) -> typer.Exit:
    """Print the error and return the exit to raise."""
    err.print(f"[red]error:[/red] {escape(message)}", highlight=False)
    return typer.Exit(1)


def read_nodes(nodes_file: Path | None, cluster: str | None, policy) -> list[NodeReading]:
    """Read the nodes from a `kubectl get nodes -o json` dump, or else from the cluster."""
    if nodes_file is not None:
        try:
            dump = json.loads(nodes_file.read_text())
        except (OSError, ValueError) as exc:
            raise fail(f"cannot read {nodes_file}: {exc}") from None
        items = dump.get("items") if isinstance(dump, dict) else None
        expected = "expected `kubectl get nodes -o json` output"
        if not isinstance(items, list):
            raise fail(f"{nodes_file} is not a node list ({expected})")
        for i, item in enumerate(items):
            if not isinstance(item, dict) or not isinstance(item.get("metadata", {}), dict):
                raise fail(f"{nodes_file}: items[{i}] is not a node ({expected})")
        try:
            return read_inventory(items)
        except (AttributeError, TypeError, KeyError, ValueError) as exc:
            # A node with a field of the wrong kind (labels as a list, ...): the file, not gpulease.
            raise fail(f"{nodes_file} holds a node gpulease cannot read ({type(exc).__name__}: {exc}; "
                       f"{expected})") from None
    settings = load_settings()
    try:
        api_client = make_api_client(settings=settings, cluster=policy.cluster(cluster))
    except KeyError as exc:
        raise fail(str(exc.args[0])) from None
    except ConfigException as exc:
        raise fail(
            f"cannot reach the cluster: {exc}; set GPULEASE_KUBE_API_URL, a kubeconfig context, or "
            "the cluster's api_url in the policy"
        ) from None
    try:
        return read_cluster(api_client, retry=retry_policy(settings=settings))
    except InfrastructureError as exc:
        raise fail(f"cannot read the cluster: {exc}") from None
    finally:
        api_client.close()


def _schedulable(node: dict) -> str:
    """Say whether the node takes new leases: yes, cordoned (moving to a tier), or draining."""
    target = node["target_tier"]
    if not node["schedulable"]:
        return f"cordoned, moving to {target}" if target else "cordoned"
    if target:
        since = f" since {node['draining_since']}" if node["draining_since"] else ""
        return f"draining for {target}{since}"
    return "yes"


def inventory(
    nodes_file: Path | None = typer.Option(
        None, "--nodes", help="A `kubectl get nodes -o json` dump instead of the live cluster."
    ),
    policy_file: Path | None = typer.Option(None, "--policy", help="Overrides GPULEASE_POLICY_FILE."),
    cluster: str | None = typer.Option(None, help="Cluster of the policy (default: the first)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """List GPU nodes with their model, GPUs and tier, and the capacity of every tier."""
    try:
        policy = load_checked_policy(policy_file or load_settings().policy_file)
    except (PolicyError, SettingsError) as exc:
        raise fail(str(exc)) from None
    specs = tier_specs(policy)
    readings = read_nodes(nodes_file, cluster, policy)
    assessed = assess_nodes(inventory=[r.state for r in readings], tiers=specs)
    nodes = [
        {
            "name": a.node.name,
            "gpu_model": a.node.gpu_model,
            "gpus": a.node.gpus,
            "tier": a.node.tier,
            "schedulable": a.node.schedulable,
            "units": a.units,
            "gpu_pods": a.node.gpu_pods,
            "target_tier": a.node.target_tier,
            "draining_since": draining_since(datetime.fromtimestamp(a.node.drain_started, UTC))
            if a.node.drain_started is not None
            else None,
            "reason": None if a.counted else (a.node.reason or a.reason),
        }
        for a in assessed
    ]
    tiers = []
    for name, spec in specs.items():
        mine = [a for a in assessed if a.tier == name]
        tiers.append(
            {
                "name": name,
                "gpu_model": spec.gpu_model,
                "mode": spec.mode.value,
                "units_per_gpu": spec.units_per_gpu,
                "nodes": len(mine),
                "serving_nodes": sum(a.counted for a in mine),
                "capacity_units": sum(a.units for a in mine),
            }
        )
    if as_json:
        print(json.dumps({"nodes": nodes, "tiers": tiers}))
        return
    table = Table(title="nodes")
    for column in (
        "node",
        "GPU model",
        "GPUs",
        "tier",
        "units",
        "GPU pods",
        "schedulable",
        "not serving because",
    ):
        table.add_column(column)
    for n in nodes:
        # Escaped: names, labels and reasons come from the cluster, not from us.
        table.add_row(
            escape(n["name"]),
            escape(n["gpu_model"] or "-"),
            str(n["gpus"]),
            escape(n["tier"] or "-"),
            str(n["units"]),
            str(n["gpu_pods"]),
            escape(_schedulable(n)),
            escape(n["reason"] or ""),
        )
    out.print(table)
    table = Table(title="tiers")
    for column in ("tier", "GPU model", "mode", "units/GPU", "nodes", "serving", "capacity (units)"):
        table.add_column(column)
    for t in tiers:
        table.add_row(
            t["name"],
            t["gpu_model"],
            t["mode"],
            str(t["units_per_gpu"]),
            str(t["nodes"]),
            str(t["serving_nodes"]),
            str(t["capacity_units"]),
        )
    out.print(table)
