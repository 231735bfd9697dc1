"""Shared fixtures: databases (SQLite and PostgreSQL), Redis, a fixed clock, lease factories.

`db_url` runs a test once per database (ids end in `[sqlite]` / `[postgres]`) and hands it an
empty database; `engine` is the same database migrated to head. PostgreSQL and Redis are the
real services at GPULEASE_TEST_POSTGRES_URL / GPULEASE_TEST_REDIS_URL. When one is not
reachable its tests are skipped, naming the service and URL, except under CI=true, where
they fail: CI must not pass by skipping.

Each test session works in its own PostgreSQL schema (gpulease_test_<random>, reached through
the URL's search_path option, Alembic's version table included) and drops it at the end, so
runs sharing the database do not see each other.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import make_url
from sqlmodel import Session

from leases.models import Lease
from leases.records import create_lease
from leases.store import make_engine, upgrade

POSTGRES_URL = os.environ.get(
    "GPULEASE_TEST_POSTGRES_URL", "postgresql+psycopg://root@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("GPULEASE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
CONNECT_TIMEOUT_S = 3


def _probe_postgres(url: str) -> None:
    engine = create_engine(url, connect_args={"connect_timeout": CONNECT_TIMEOUT_S})
    try:
        with engine.connect() as connection:
            connection.exec_driver_sql("SELECT 1")
    finally:
        engine.dispose()


def _probe_redis(url: str) -> None:
    import redis

    client = redis.Redis.from_url(
        url, socket_connect_timeout=CONNECT_TIMEOUT_S, socket_timeout=CONNECT_TIMEOUT_S
    )
    try:
        client.ping()
    finally:
        client.close()


def require_service(name: str, url: str, probe: Callable[[str], None]) -> None:
    """Skip the calling test unless `probe(url)` reaches the service; fail instead under CI."""
    try:
        probe(url)
    except Exception as exc:  # any failure to connect means the same thing here
        shown = make_url(url).render_as_string(hide_password=True)
        first_line = (str(exc).splitlines() or [""])[0]
        message = f"{name} is not reachable at {shown}: {type(exc).__name__}: {first_line}"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{message} (CI=true: integration tests need {name})", pytrace=False)
        pytest.skip(message)


def _with_search_path(url: str, schema: str) -> str:
    parsed = make_url(url).update_query_dict({"options": f"-csearch_path={schema}"})
    return parsed.render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def _postgres_schema() -> Iterator[tuple[str, str, Engine]]:
    # Session scope: the reachability check (and its skip or failure) happens once.
    require_service("PostgreSQL", POSTGRES_URL, _probe_postgres)
    schema = f"gpulease_test_{secrets.token_hex(6)}"
    admin = create_engine(POSTGRES_URL)
    with admin.begin() as connection:
        connection.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    try:
        yield _with_search_path(POSTGRES_URL, schema), schema, admin
    finally:
        with admin.begin() as connection:
            connection.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """Return the URL of an empty database: a temporary SQLite file, or this session's
    PostgreSQL schema emptied for this test."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path_factory.mktemp('db') / 'gpulease.db'}"
    url, schema, admin = request.getfixturevalue("_postgres_schema")
    with admin.begin() as connection:
        connection.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        connection.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    return url


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """Return an engine on the test database, migrated to the newest revision."""
    upgrade(db_url)
    engine = make_engine(db_url)
    try:
        yield engine
    finally:
        engine.dispose()


@pytest.fixture(scope="session")
def _redis_reachable() -> str:
    require_service("Redis", REDIS_URL, _probe_redis)
    return REDIS_URL


@pytest.fixture
def redis_url(_redis_reachable: str) -> str:
    """Return the URL of the test Redis (skipped, or failed under CI, if unreachable)."""
    return _redis_reachable


@pytest.fixture
def now() -> datetime:
    """Return a fixed, timezone-aware 'now' for tests that inject the clock."""
    return datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


@pytest.fixture
def make_lease(now: datetime) -> Callable[..., Lease]:
    """Return a function that records a request with sensible defaults (each overridable)
    and a fresh namespace name."""

    def make(session: Session, **overrides: Any) -> Lease:
        fields: dict[str, Any] = {
            "namespace": f"ns-{secrets.token_hex(4)}",
            "cluster": "gpu-a",
            "requester": "U_REQUESTER",
            "team": "vision",
            "tier": "h100-1g",
            "units": 1,
            "duration": timedelta(days=1),
            "now": now,
            "reason": "fine-tuning",
        }
        fields.update(overrides)
        return create_lease(session, **fields)

    return make


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Say how many database-backed tests ran on each database, so a run shows both did."""
    counts: dict[str, dict[str, int]] = {}
    for outcome in ("passed", "failed", "error", "skipped"):
        for report in terminalreporter.stats.get(outcome, []):
            nodeid = getattr(report, "nodeid", "")
            if getattr(report, "when", "call") not in ("call", "setup"):
                continue
            if outcome == "passed" and report.when != "call":
                continue
            for backend in ("sqlite", "postgres"):
                if f"[{backend}" in nodeid or f"-{backend}]" in nodeid or f"-{backend}-" in nodeid:
                    counts.setdefault(backend, {}).setdefault(outcome, 0)
                    counts[backend][outcome] += 1
    if counts:
        terminalreporter.section("store backends")
        for backend, by_outcome in sorted(counts.items()):
            parts = ", ".join(f"{n} {outcome}" for outcome, n in sorted(by_outcome.items()))
            terminalreporter.write_line(f"{backend}: {parts}")
