"""Migrations: an empty database upgrades to a schema identical to the models, and back."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect
from sqlmodel import SQLModel

from leases.store import (
    current_revision,
    downgrade,
    head_revision,
    make_engine,
    upgrade,
    upgrade_engine,
)

TABLES = {
    "alembic_version",
    "approval_decision",
    "audit_event",
    "lease",
    "pool",
    "reservation",
    "sent_warning",
    "outbox_message",
    "node_move",
    "team",
}


def _schema_diff(url: str) -> list:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            return compare_metadata(context, SQLModel.metadata)
    finally:
        engine.dispose()


def _tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return set(inspect(connection).get_table_names())
    finally:
        engine.dispose()


def test_upgrade_from_empty_gives_the_models_schema(db_url):
    assert current_revision(db_url) is None
    upgrade(db_url)
    assert current_revision(db_url) == head_revision()
    assert _tables(db_url) == TABLES  # on PostgreSQL: in this session's schema, version too
    assert _schema_diff(db_url) == []


def test_upgrade_twice_changes_nothing(db_url):
    upgrade(db_url)
    upgrade(db_url)
    assert current_revision(db_url) == head_revision()
    assert _schema_diff(db_url) == []


def test_downgrade_to_base_and_up_again(db_url):
    upgrade(db_url)
    downgrade(db_url, revision="base")
    assert current_revision(db_url) is None
    assert _tables(db_url) <= {"alembic_version"}
    upgrade(db_url)
    assert _schema_diff(db_url) == []


def test_live_namespace_index_is_partial_on_the_live_states(db_url):
    upgrade(db_url)
    engine = make_engine(db_url)
    try:
        with engine.connect() as connection:
            if connection.dialect.name == "sqlite":
                ddl = connection.exec_driver_sql(
                    "SELECT sql FROM sqlite_master WHERE name = 'uq_lease_live_namespace'"
                ).scalar_one()
            else:
                ddl = connection.exec_driver_sql(
                    "SELECT indexdef FROM pg_indexes WHERE indexname = 'uq_lease_live_namespace'"
                    " AND schemaname = current_schema()"
                ).scalar_one()
    finally:
        engine.dispose()
    assert "UNIQUE" in ddl.upper()
    assert "WHERE" in ddl.upper()
    for live in ("requested", "pending_approval", "active", "reclaiming", "waitlisted"):
        assert live in ddl
    for final in ("reclaimed", "denied", "cancelled", "expired_unapproved", "failed"):
        assert f"'{final}'" not in ddl


def test_migrations_are_found_from_any_working_directory(db_url, tmp_path, monkeypatch):
    # An installed gpulease runs from anywhere: the scripts are located beside the package.
    monkeypatch.chdir(tmp_path)
    upgrade(db_url)
    assert current_revision(db_url) == head_revision()


def test_in_memory_sqlite_is_migrated_through_its_engine():
    engine = make_engine("sqlite://")
    try:
        upgrade_engine(engine)
        with engine.connect() as connection:
            assert set(inspect(connection).get_table_names()) == TABLES
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert compare_metadata(context, SQLModel.metadata) == []
    finally:
        engine.dispose()
