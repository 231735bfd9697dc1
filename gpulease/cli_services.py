"""`gpulease worker` and `gpulease beat`: the workflow services."""

from __future__ import annotations

import logging

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
) -> None:
    """Run a workflow worker (Celery) on the configured broker."""
    from gpulease.services import run_worker

    logging.basicConfig(level=loglevel)
    try:
        run_worker(_settings(), queues=tuple(queues.split(",")), concurrency=concurrency, pool=pool,
                   loglevel=loglevel)
    except (PolicyError, SettingsError) as exc:
        err.print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(1) from None


def beat(
    schedule_file: str = typer.Option("celerybeat-schedule", help="Where beat keeps its last run times."),
    loglevel: str = typer.Option("INFO", "-l", "--loglevel"),
) -> None:
    """Run the scheduler: the minute sweep, waitlist wake-ups and the reconciler."""
    from gpulease.services import run_beat

    run_beat(_settings(), schedule_file=schedule_file, loglevel=loglevel)
