"""`make demo`: run what the embedded default offers today, end to end, and say what ran.

Migrates the embedded SQLite store, validates the example policy against the GPU catalog and
evaluates a few typical requests with the policy engine. Exits non-zero, naming the step, if
any step does not do what it should.
"""

from __future__ import annotations

import sys
from datetime import timedelta
from pathlib import Path

from rich.console import Console
from rich.table import Table

from config.settings import EXAMPLE_POLICY
from gpulease.wiring import load_checked_policy
from leases.policy import Request, Usage, evaluate
from leases.store import current_revision, head_revision, upgrade
from leases.tiers import describe_unit, units_per_gpu

console = Console()


def main(workdir: Path = Path("demo-out")) -> int:
    """Run the demo steps; return the process exit code."""
    workdir.mkdir(exist_ok=True)
    url = f"sqlite:///{workdir / 'gpulease.db'}"
    failures: list[str] = []

    console.rule("1. state store (embedded SQLite)")
    upgrade(url)
    revision = current_revision(url)
    console.print(f"{url} at schema revision {revision}")
    if revision != head_revision():
        failures.append("store migration did not reach the newest revision")

    console.rule("2. policy file")
    policy = load_checked_policy(EXAMPLE_POLICY)
    table = Table("tier", "units/GPU", "one unit is")
    for tier in policy.tiers:
        table.add_row(tier.name, str(units_per_gpu(tier)), describe_unit(tier))
    console.print(table)

    console.rule("3. requests through the policy engine")
    cases = [
        (
            "small short 1g slice",
            Request("U0ALICE", "ml-research", "h100-1g", 1, "alice-nb", timedelta(hours=8)),
            Usage(),
            "auto",
        ),
        (
            "a whole GPU for 2 days",
            Request("U0BOB", "ml-research", "h100-full", 1, "bob-train", timedelta(days=2)),
            Usage(),
            "required",
        ),
        (
            "over the team's quota",
            Request("U0CAROL", "vision", "h100-1g", 3, "carol-eval", timedelta(days=1)),
            Usage(team_units={"h100-1g": 6}),
            "refused",
        ),
        (
            "reserved name",
            Request("U0ALICE", "ml-research", "h100-1g", 1, "kube-mine", None),
            Usage(),
            "refused",
        ),
    ]
    table = Table("request", "verdict", "why")
    for label, request, usage, expected in cases:
        verdict = evaluate(policy, request, usage)
        got = "refused" if not verdict.allowed else verdict.approval
        why = (
            f"rule {verdict.rule}"
            if verdict.rule
            else "; ".join(f"{e.field}: {e.message}" for e in verdict.errors) or "needs an approver"
        )
        table.add_row(label, got, why)
        if got != expected:
            failures.append(f"request '{label}' was {got}, expected {expected}")
    console.print(table)

    if failures:
        for failure in failures:
            console.print(f"[red]FAILED:[/red] {failure}")
        return 1
    console.print("[green]demo finished: every step did what it should[/green]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
