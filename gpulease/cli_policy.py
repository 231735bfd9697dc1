"""`gpulease policy ...`: check a policy file, and evaluate a request against it."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from config.durations import format_duration, parse_duration
from config.policy import PolicyError
from gpulease.console import err, out
from gpulease.wiring import load_checked_policy
from leases.policy import Request, Usage, evaluate
from leases.tiers import describe_unit, units_per_gpu

app = typer.Typer(help="Check policy files and try requests against them.", no_args_is_help=True)


def _load(path: Path):
    try:
        return load_checked_policy(path)
    except PolicyError as exc:
        # Escaped: messages quote the file's own text, where [a-z0-9] or [/b] is not markup.
        err.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False)
        raise typer.Exit(1) from None


@app.command("check")
def check(
    file: Path = typer.Argument(..., help="Policy YAML file."),
    as_json: bool = typer.Option(False, "--json", help="Print the tiers as JSON."),
) -> None:
    """Validate a policy file and list its tiers with their units per GPU."""
    policy = _load(file)
    tiers = [
        {
            "name": t.name,
            "gpu_model": t.gpu_model,
            "mode": t.mode.value,
            "units_per_gpu": units_per_gpu(t),
        }
        for t in policy.tiers
    ]
    if as_json:
        print(json.dumps({"tiers": tiers}))
        return
    table = Table(title=f"{escape(str(file))}: {len(tiers)} tiers, {len(policy.teams)} teams")
    for column in ("tier", "GPU model", "mode", "units/GPU", "max units", "max duration"):
        table.add_column(column, no_wrap=True)
    table.add_column("one unit is")
    for tier, row in zip(policy.tiers, tiers, strict=True):
        table.add_row(
            tier.name,
            tier.gpu_model,
            tier.mode.value
            + (f" {tier.mig_profile}" if tier.mig_profile else "")
            + (f" x{tier.replicas}" if tier.replicas else ""),
            str(row["units_per_gpu"]),
            str(tier.max_units),
            format_duration(tier.max_duration),
            escape(describe_unit(tier)),
        )
    out.print(table)
    out.print("[green]policy OK[/green]")


def _duration(value: str | None):
    if value is None:
        return None
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--duration") from None


@app.command("evaluate")
def evaluate_cmd(
    policy_file: Path = typer.Option(..., "--policy", help="Policy YAML file."),
    user: str = typer.Option(..., help="Requester's Slack user id."),
    team: str = typer.Option(..., help="Team the request is charged to."),
    tier: str = typer.Option(..., help="Tier name."),
    units: int = typer.Option(1, help="Units of the tier."),
    duration: str | None = typer.Option(None, help="e.g. 12h, 3d (default: the tier's)."),
    namespace: str = typer.Option(..., help="Namespace name asked for."),
    groups: list[str] = typer.Option([], "--group", help="Slack user groups the user is in."),
    team_units: list[str] = typer.Option(
        [], "--team-units", help="Units the team already holds, as TIER=N (repeatable)."
    ),
    user_leases: int = typer.Option(0, help="Live leases the user already holds."),
    taken: list[str] = typer.Option([], "--taken", help="Namespace names already leased."),
    as_json: bool = typer.Option(False, "--json", help="Print the verdict as JSON."),
) -> None:
    """Say what would happen to a request: allowed or not (and why), and who approves; exit 1 if refused."""
    policy = _load(policy_file)
    held: dict[str, int] = {}
    for item in team_units:
        name, sep, count = item.partition("=")
        if not sep or not count.isdigit():
            raise typer.BadParameter(f"{item!r}: write TIER=N", param_hint="--team-units")
        held[name] = int(count)
    request = Request(
        requester=user,
        team=team,
        tier=tier,
        units=units,
        namespace=namespace,
        duration=_duration(duration),
        requester_groups=frozenset(groups),
    )
    usage = Usage(team_units=held, user_live_leases=user_leases, live_namespaces=frozenset(taken))
    verdict = evaluate(policy, request, usage)
    if as_json:
        print(json.dumps(verdict.as_dict()))
    elif verdict.allowed:
        how = f"auto-approved by rule {verdict.rule}" if verdict.rule else "needs an approver"
        out.print(f"[green]allowed[/green]: {escape(how)}", highlight=False)
    else:
        out.print("[red]refused[/red]:")
        for e in verdict.errors:
            out.print(f"  {escape(e.field)}: {escape(e.message)}", highlight=False)
    if not verdict.allowed:
        raise typer.Exit(1)  # so a script can tell, like `db current` behind
