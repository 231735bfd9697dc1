"""`gpulease dev`: the embedded stack and a local web page that plays the Slack side."""

from __future__ import annotations

import threading
from pathlib import Path

import typer
from rich.markup import escape

from gpulease.console import err, out
from gpulease.dev import PortUnavailable, running
from gpulease.logs import configure_logging


def dev(
    port: int = typer.Option(8080, min=0, max=65535, help="Port of the page on 127.0.0.1 (0: any free port)."),
    workdir: Path = typer.Option(Path("dev-out"), help="Where its SQLite store goes (gpulease-embedded.db, replaced at start)."),
) -> None:
    """Run the whole embedded stack with a local page to act as Slack users, until Ctrl-C."""
    configure_logging(level="WARNING")  # the page is the output; the log is for what failed
    err.print("starting the embedded stack (SQLite, in-process worker, sandbox cluster and Slack)…")
    try:
        with running(workdir, port=port) as server:
            out.print(f"gpulease dev: open {server.url}  (Ctrl-C stops everything)", highlight=False)
            try:
                threading.Event().wait()
            except KeyboardInterrupt:
                err.print("stopping…")
    except PortUnavailable as exc:
        err.print(f"[red]{escape(str(exc))}[/red] — pick another with --port")
        raise typer.Exit(1) from None
    err.print("stopped")
