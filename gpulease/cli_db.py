"""`gpulease db ...` and `gpulease leases ...`: the state store from the command line."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import typer
from rich.table import Table
from sqlmodel import select

from config.durations import format_duration
from config.settings import SettingsError, load_settings
from gpulease.console import err, out
from leases.models import Lease
from leases.states import LIVE_STATES, LeaseState
from leases.store import current_revision, head_revision, make_engine, session_scope, upgrade

db_app = typer.Typer(help="Create and migrate the state store.", no_args_is_help=True)
leases_app = typer.Typer(help="Look at leases in the state store.", no_args_is_help=True)

DB_OPTION = typer.Option(None, "--database-url", help="Overrides GPULEASE_DATABASE_URL.")


def _url(database_url: str | None) -> str:
    try:
        return database_url or load_settings().database_url
    except SettingsError as exc:
        err.print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(2) from None


@db_app.command("upgrade")
def db_upgrade(
    database_url: str | None = DB_OPTION,
    revision: str = typer.Option("head", help="Target revision."),
) -> None:
    """Create the store or migrate it to the newest schema."""
    url = _url(database_url)
    before = current_revision(url)
    upgrade(url, revision=revision)
    after = current_revision(url)
    if before == after:
        out.print(f"database already at revision {after}", highlight=False)
    else:
        out.print(f"database migrated from {before or 'empty'} to {after}", highlight=False)


@db_app.command("current")
def db_current(database_url: str | None = DB_OPTION) -> None:
    """Print the store's schema revision and whether it is the newest."""
    url = _url(database_url)
    current, head = current_revision(url), head_revision()
    state = "up to date" if current == head else f"behind (newest is {head}; run `gpulease db upgrade`)"
    out.print(f"{current or 'empty'}: {state}", highlight=False)
    if current != head:
        raise typer.Exit(1)


def _store_exists(url: str) -> bool:
    # Asking SQLite about a file that is not there would create it empty.
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
        return False
    return current_revision(url) is not None


@leases_app.command("list")
def leases_list(
    database_url: str | None = DB_OPTION,
    state: list[LeaseState] = typer.Option([], "--state", help="Only these states (repeatable)."),
    live: bool = typer.Option(False, "--live", help="Only live leases."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """List leases, newest first."""
    url = _url(database_url)
    if not _store_exists(url):
        err.print(f"error: no state store at {url}; run `gpulease db upgrade` first", highlight=False)
        raise typer.Exit(1)
    engine = make_engine(url)
    with session_scope(engine) as session:
        query = select(Lease).order_by(Lease.created_at.desc())
        if state:
            query = query.where(Lease.state.in_(state))
        if live:
            query = query.where(Lease.state.in_(LIVE_STATES))
        rows = [lease.model_dump(mode="json") for lease in session.exec(query)]
    engine.dispose()
    if as_json:
        print(json.dumps({"leases": rows}))
        return
    table = Table(title=f"{len(rows)} leases")
    for column in ("id", "namespace", "state", "team", "tier", "units", "requester", "expires"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            row["id"][:8],
            row["namespace"],
            row["state"],
            row["team"],
            row["tier"],
            str(row["units"]),
            row["requester"],
            row["expires_at"] or "for " + format_duration(timedelta(seconds=row["duration_seconds"])),
        )
    out.print(table)
