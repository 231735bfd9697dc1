"""`gpulease worker` and `gpulease beat`: the workflow services."""

from __future__ import annotations

import typer

from config.policy import PolicyError
from config.settings import SettingsError, load_settings
from gpulease.console import err
from workflows.queues import ALL


def _settings():
    try:
        return load_settings()
    except SettingsError as exc:
        err.print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(2) from None


def worker(
    queues: str = typer.Option(",".join(ALL), help="Comma-separated queues to consume."),
    concurrency: int = typer.Option(2, "-c", "--concurrency", help="Worker processes (or threads)."),
    pool: str = typer.Option("prefork", help="prefork, threads or solo."),
    loglevel: str = typer.Option("INFO", "-l", "--loglevel"),
    metrics_port: int | None = typer.Option(None, help="Serve Prometheus metrics on this port."),
) -> None:
    """Run a workflow worker (Celery) on the configured broker."""
    from gpulease.logs import configure_logging
    from gpulease.services import run_worker

    settings = _settings()
    configure_logging(fmt=settings.log_format, level=loglevel)
    try:
        run_worker(settings, queues=tuple(queues.split(",")), concurrency=concurrency, pool=pool,
                   loglevel=loglevel, metrics_port=metrics_port)
    except (PolicyError, SettingsError) as exc:
        err.print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(1) from None


def beat(
    schedule_file: str = typer.Option("celerybeat-schedule", help="Where beat keeps its last run times."),
    loglevel: str = typer.Option("INFO", "-l", "--loglevel"),
) -> None:
    """Run the scheduler: the minute sweep, waitlist wake-ups and the reconciler."""
    from gpulease.logs import configure_logging
    from gpulease.services import run_beat

    settings = _settings()
    configure_logging(fmt=settings.log_format, level=loglevel)
    run_beat(settings, schedule_file=schedule_file, loglevel=loglevel)


def doctor(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Check settings, store, broker, cluster access and permissions, GPU nodes and Slack."""
    import json

    from rich.table import Table

    from gpulease.console import out
    from gpulease.doctor import Doctor

    checks = Doctor().run()
    failed = [c for c in checks if not c.ok]
    if as_json:
        print(json.dumps({"ok": not failed, "checks": [vars(c) for c in checks]}))
    else:
        table = Table(title="gpulease doctor")
        for column in ("check", "", "finding", "fix"):
            table.add_column(column)
        for c in checks:
            mark = "[dim]skip[/dim]" if c.skipped else ("[green]ok[/green]" if c.ok else "[red]FAIL[/red]")
            table.add_row(c.name, mark, c.detail, c.fix or "")
        out.print(table)
    if failed:
        raise typer.Exit(1)
