"""`gpulease worker` and `gpulease beat`: the workflow services."""

from __future__ import annotations

import difflib
from enum import StrEnum

import typer
from rich.markup import escape

from config.policy import PolicyError
from config.settings import SettingsError, check_log_level, load_settings
from gpulease.console import err
from gpulease.redact import hide_password
from workflows.queues import ALL

# The in-memory broker lives inside one process: a worker or beat started on it alone shares
# its queues with nobody. `serve`, `socket`, `dev` and the demo run their own worker thread on it.
IN_PROCESS_BROKER = "memory://"


class Pool(StrEnum):
    """Celery execution pools gpulease runs on."""

    PREFORK = "prefork"
    THREADS = "threads"
    SOLO = "solo"


def _settings():
    try:
        return load_settings()
    except SettingsError as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False)
        raise typer.Exit(2) from None


def _queues(text: str) -> tuple[str, ...]:
    names = tuple(q.strip() for q in text.split(",") if q.strip())
    for name in names:
        if name not in ALL:
            hint = difflib.get_close_matches(name, ALL, n=1)
            extra = f" (did you mean {hint[0]}?)" if hint else ""
            raise typer.BadParameter(f"unknown queue {name!r}{extra}; known queues: {', '.join(ALL)}",
                                     param_hint="--queues")
    if not names:
        raise typer.BadParameter(f"name at least one queue of {', '.join(ALL)}", param_hint="--queues")
    return names


def _loglevel(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return check_log_level(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="-l/--loglevel") from None


LOGLEVEL = typer.Option(
    None, "-l", "--loglevel", callback=_loglevel,
    help="Log level: DEBUG, INFO, WARNING, ERROR or CRITICAL (default: GPULEASE_LOG_LEVEL).",
)


def worker(
    queues: str = typer.Option(",".join(ALL), help="Comma-separated queues to consume."),
    concurrency: int = typer.Option(2, "-c", "--concurrency", min=1, help="Worker processes (or threads)."),
    pool: Pool = typer.Option(Pool.PREFORK.value, help="Execution pool."),
    loglevel: str | None = LOGLEVEL,
    metrics_port: int | None = typer.Option(None, min=1, max=65535, help="Serve Prometheus metrics on this port."),
) -> None:
    """Run a workflow worker (Celery) on the configured broker."""
    from gpulease.logs import configure_logging
    from gpulease.services import run_worker

    names = _queues(queues)
    settings = _settings()
    if settings.broker_url.startswith(IN_PROCESS_BROKER):
        err.print(
            f"[red]error:[/red] GPULEASE_BROKER_URL is {escape(hide_password(settings.broker_url))}, the "
            "in-process broker: a worker started on it alone consumes queues no other process can send "
            "to. Set GPULEASE_BROKER_URL to the broker the bot and beat use (e.g. redis://HOST:6379/0); "
            "on memory://, `gpulease serve`, `socket` and `dev` run their own worker.",
            highlight=False,
        )
        raise typer.Exit(2)
    loglevel = loglevel or settings.log_level
    configure_logging(fmt=settings.log_format, level=loglevel)
    try:
        run_worker(settings, queues=names, concurrency=concurrency, pool=pool.value,
                   loglevel=loglevel, metrics_port=metrics_port)
    except (PolicyError, SettingsError) as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False)
        raise typer.Exit(1) from None


def beat(
    schedule_file: str = typer.Option("celerybeat-schedule", help="Where beat keeps its last run times."),
    loglevel: str | None = LOGLEVEL,
) -> None:
    """Run the scheduler: the minute sweep, waitlist wake-ups and the reconciler."""
    from gpulease.logs import configure_logging
    from gpulease.services import run_beat

    settings = _settings()
    if settings.broker_url.startswith(IN_PROCESS_BROKER):
        # A warning, not a refusal: beat alone on memory:// still keeps its schedule file (what
        # its liveness probe checks), but the sweeps it sends reach no worker.
        err.print(
            f"[yellow]warning:[/yellow] GPULEASE_BROKER_URL is {escape(hide_password(settings.broker_url))}, "
            "the in-process broker: the sweeps beat sends reach no worker. Set GPULEASE_BROKER_URL to "
            "the broker the workers use (e.g. redis://HOST:6379/0).",
            highlight=False,
        )
    loglevel = loglevel or settings.log_level
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
            # Escaped: findings quote policy text, settings and servers' answers, not markup.
            table.add_row(escape(c.label), mark, escape(c.detail), escape(c.fix or ""))
        out.print(table)
    if failed:
        raise typer.Exit(1)
