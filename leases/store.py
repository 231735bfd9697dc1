"""The state store: engines, transactions and schema migrations.

Imported by the composition root (gpulease), workflows, bot and tests. Store functions in
leases (lifecycle, reservations) take a session and never commit; the caller owns the
transaction, normally through `session_scope`.

SQLite (the embedded default) and PostgreSQL (production) behave the same to callers:
- PostgreSQL: row locks (`SELECT ... FOR UPDATE`) serialise changes to one lease or pool;
  `hold_lock` serialises what has no row of its own (all the leases of one requester).
- SQLite: every transaction starts with `BEGIN IMMEDIATE`, taking the database's write lock
  at the start, so concurrent writers queue (up to the busy timeout) instead of failing
  halfway with "database is locked"; `FOR UPDATE` is a no-op there and not needed.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import StaticPool
from sqlmodel import Session

DEFAULT_URL = "sqlite:///./gpulease.db"
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
# How long a SQLite writer waits for the write lock before giving up.
SQLITE_BUSY_TIMEOUT_S = 30.0
# How long opening a PostgreSQL connection may take (seconds; the URL's own connect_timeout wins).
POSTGRES_CONNECT_TIMEOUT_S = 5


def make_engine(url: str = DEFAULT_URL, *, echo: bool = False, pool_size: int | None = None) -> Engine:
    """Create an engine for a SQLite or PostgreSQL URL, set up for concurrent writers."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(url, echo=echo)
    options: dict[str, Any] = {"pool_pre_ping": True}
    if "connect_timeout" not in parsed.query:
        # Without one, a server that accepts the connection and never answers (a hung database,
        # a blackholed route) holds the caller for minutes: a health check, doctor, a scrape.
        options["connect_args"] = {"connect_timeout": POSTGRES_CONNECT_TIMEOUT_S}
    if pool_size is not None:
        options.update(pool_size=pool_size, max_overflow=0)
    return create_engine(url, echo=echo, **options)


def _sqlite_engine(url: str, *, echo: bool) -> Engine:
    parsed = make_url(url)
    in_memory = parsed.database in (None, "", ":memory:")
    connect_args: dict[str, Any] = {
        "timeout": SQLITE_BUSY_TIMEOUT_S,
        "check_same_thread": False,
    }
    options: dict[str, Any] = {}
    if in_memory:
        # Each connection to ":memory:" is a new, empty database: share one connection.
        # Only fit for single-threaded tests.
        options["poolclass"] = StaticPool
    engine = create_engine(url, echo=echo, connect_args=connect_args, **options)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: sqlite3.Connection, _record: object) -> None:
        # Stop the sqlite3 module from issuing its own (deferred) BEGIN; we issue ours below.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute(f"PRAGMA busy_timeout = {int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        # IMMEDIATE takes the write lock now: a read-then-write transaction (check capacity,
        # then reserve) cannot interleave with another writer, and a waiting writer queues on
        # the busy timeout instead of failing at its first write with SQLITE_BUSY.
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """Open a session; commit when the block succeeds, roll back when it raises."""
    # expire_on_commit=False: objects stay readable after the commit (e.g. to enqueue by id).
    session = Session(engine, expire_on_commit=False)
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def hold_lock(session: Session, *, name: str) -> None:
    """Hold a lock named `name` until the session's transaction ends; others asking for it wait.

    A PostgreSQL transaction-level advisory lock; on SQLite every writing transaction holds
    the database's write lock from its start already, so there is nothing more to take. Two
    names may share a key (a 64-bit hash): that only makes their holders queue.
    """
    if session.get_bind().dialect.name != "postgresql":
        return
    key = int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big", signed=True)
    session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})


def _alembic_config() -> Config:
    config = Config()
    # Found beside this module, not relative to the working directory, so an installed
    # package migrates as well as a checkout.
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def _migrate(engine: Engine, step: Callable[[Config], None]) -> None:
    config = _alembic_config()
    # One transaction for the whole run: a failing revision leaves the schema as it was.
    with engine.begin() as connection:
        # Handed over as an object, not a config string: URLs may contain "%" (escaped
        # options such as search_path) that Alembic's ini interpolation would mangle.
        config.attributes["connection"] = connection
        step(config)


def _with_engine(url: str, step: Callable[[Config], None]) -> None:
    engine = make_engine(url)
    try:
        _migrate(engine, step)
    finally:
        engine.dispose()


def upgrade(url: str, *, revision: str = "head") -> None:
    """Migrate the database at `url` to `revision` (the newest by default)."""
    _with_engine(url, lambda config: command.upgrade(config, revision))


def upgrade_engine(engine: Engine, *, revision: str = "head") -> None:
    """Migrate the database behind an open engine (e.g. an in-memory SQLite one)."""
    _migrate(engine, lambda config: command.upgrade(config, revision))


def downgrade(url: str, *, revision: str) -> None:
    """Migrate the database at `url` back to `revision` ("base" empties it)."""
    _with_engine(url, lambda config: command.downgrade(config, revision))


def current_revision(url: str) -> str | None:
    """Return the migration revision the database at `url` is at (None when empty)."""
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()


def head_revision() -> str | None:
    """Return the newest migration revision this code knows."""
    return ScriptDirectory.from_config(_alembic_config()).get_current_head()
