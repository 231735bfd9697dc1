"""`python -m gpulease.demo [--out DIR]` (what `make demo` runs)."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from rich.table import Table

from gpulease.console import out as console
from gpulease.demo import report
from gpulease.demo.scenario import StepFailed, Story, run
from gpulease.embedded import embedded
from leases.capacity import assess_nodes
from leases.reservations import pool_usage
from leases.store import session_scope
from provisioners.inventory import read_cluster


def capacity_rows(story: Story) -> list[dict]:
    """Return the final capacity per tier with the nodes serving it."""
    rt = story.env.runtime
    readings = read_cluster(rt.kube("sandbox"), retry=rt.retry)
    assessed = assess_nodes(inventory=[r.state for r in readings], tiers=rt.tiers)
    with session_scope(rt.engine) as session:
        pools = {p.tier: p for p in pool_usage(session)}
    rows = []
    for tier in rt.tiers:
        pool = pools.get(tier)
        rows.append({
            "tier": tier,
            "capacity": pool.capacity if pool else 0,
            "reserved": pool.reserved if pool else 0,
            "free": pool.free if pool else 0,
            "nodes": [a.node.name for a in assessed if a.tier == tier and a.counted],
        })
    return rows


def main() -> int:
    """Run the demo; return the exit code (non-zero names the step that failed)."""
    parser = argparse.ArgumentParser(description="Run the gpulease demo on the embedded default.")
    parser.add_argument("--out", type=Path, default=Path("demo-out"), help="where the store and report go")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    started = time.monotonic()
    failure = None
    console.rule("gpulease demo: embedded default (SQLite, in-process worker, sandbox cluster and Slack)")
    with embedded(args.out, sweep_every=None) as env:
        story = Story(env)
        try:
            run(story)
        except StepFailed as exc:
            failure = str(exc)
        capacity = capacity_rows(story)
        path = report.write(story, args.out / "report.html", failure=failure, capacity=capacity)
    _print_timeline(story)
    _print_capacity(capacity)
    console.print(f"report: {path.resolve()}  ({time.monotonic() - started:.0f} s)")
    if failure:
        console.print(f"[red]FAILED[/red] {failure}")
        return 1
    console.print("[green]demo finished: every step happened as expected[/green]")
    return 0


def _print_timeline(story: Story) -> None:
    table = Table(title="timeline", show_lines=False)
    table.add_column("time")
    table.add_column("what happened")
    current = None
    for event in story.events:
        if event.step != current:
            current = event.step
            table.add_row("", f"[bold]{event.step}[/bold]")
        table.add_row(f"{event.at:%H:%M:%S}", event.text)
    console.print(table)


def _print_capacity(rows: list[dict]) -> None:
    table = Table(title="capacity per tier")
    for column in ("tier", "capacity", "reserved", "free", "nodes"):
        table.add_column(column)
    for row in rows:
        table.add_row(row["tier"], str(row["capacity"]), str(row["reserved"]), str(row["free"]), ", ".join(row["nodes"]))
    console.print(table)


if __name__ == "__main__":
    sys.exit(main())
