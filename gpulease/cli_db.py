"""`gpulease db ...` and `gpulease leases ...`: the state store from the command line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import typer
from rich.markup import escape
from rich.table import Table
from sqlmodel import select

from config.durations import format_duration
from config.settings import SettingsError, load_settings
from gpulease.console import err, out
from gpulease.store_access import (
    FIX_URL,
    StoreUnusable,
    require_creatable,
    require_current,
    require_existing,
    require_known,
    store_errors,
)
from leases.models import Lease
from leases.states import LIVE_STATES, LeaseState
from leases.store import current_revision, head_revision, make_engine, session_scope, upgrade

db_app = typer.Typer(help="Create and migrate the state store.", no_args_is_help=True)
leases_app = typer.Typer(help="Look at leases in the state store.", no_args_is_help=True)

DB_OPTION = typer.Option(None, "--database-url", help="Overrides GPULEASE_DATABASE_URL.")


def _url(database_url: str | None) -> str:
    # --database-url is checked like GPULEASE_DATABASE_URL (SQLite or PostgreSQL only).
    overrides = {} if database_url is None else {"database_url": database_url}
    try:
        return load_settings(**overrides).database_url
    except SettingsError as exc:
        message = str(exc) if database_url is None else str(exc).replace(FIX_URL, "--database-url")
        err.print(f"[red]error:[/red] {escape(message)}", highlight=False)
        raise typer.Exit(2) from None


def _option(database_url: str | None) -> str | None:
    return None if database_url is None else "--database-url"


@contextmanager
def on_store(*, url: str, doing: str, option: str | None = None) -> Iterator[None]:
    """Run the block against the store; print why it failed, if it did, and exit 1.

    `option`: the command-line option the URL came from, named instead of the variable.
    """
    try:
        with store_errors(url=url, doing=doing):
            yield
    except StoreUnusable as exc:
        message = str(exc) if option is None else str(exc).replace(FIX_URL, option)
        err.print(f"[red]error:[/red] {escape(message)}", highlight=False)
        raise typer.Exit(1) from None


@db_app.command("upgrade")
def db_upgrade(
    database_url: str | None = DB_OPTION,
    revision: str = typer.Option("head", help="Target revision."),
) -> None:
    """Create the store or migrate it to the newest schema."""
    url = _url(database_url)
    with on_store(url=url, doing=f"migrate {{store}} to revision {revision}", option=_option(database_url)):
        require_creatable(url)
        before = current_revision(url)
        require_known(url=url, current=before)
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
    with on_store(url=url, doing="read the schema revision of {store}", option=_option(database_url)):
        require_existing(url)
        current, head = current_revision(url), head_revision()
        require_known(url=url, current=current)
    state = "up to date" if current == head else f"behind (newest is {head}; run `gpulease db upgrade`)"
    out.print(f"{current or 'empty'}: {state}", highlight=False)
    if current != head:
        raise typer.Exit(1)


@leases_app.command("list")
def leases_list(
    database_url: str | None = DB_OPTION,
    state: list[LeaseState] = typer.Option([], "--state", help="Only these states (repeatable)."),
    live: bool = typer.Option(False, "--live", help="Only live leases."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """List leases, newest first."""
    url = _url(database_url)
    with on_store(url=url, doing="list leases in {store}", option=_option(database_url)):
        require_current(url)
        engine = make_engine(url)
        try:
            with session_scope(engine) as session:
                query = select(Lease).order_by(Lease.created_at.desc())
                if state:
                    query = query.where(Lease.state.in_(state))
                if live:
                    query = query.where(Lease.state.in_(LIVE_STATES))
                rows = [lease.model_dump(mode="json") for lease in session.exec(query)]
        finally:
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
            escape(row["namespace"]),
            row["state"],
            escape(row["team"]),
            escape(row["tier"]),
            str(row["units"]),
            escape(row["requester"]),
            row["expires_at"] or "for " + format_duration(timedelta(seconds=row["duration_seconds"])),
        )
    out.print(table)
