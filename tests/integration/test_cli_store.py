"""`gpulease db upgrade` and `gpulease leases list` against SQLite and PostgreSQL; and every way
the store can be unusable ending in one error that hides the password and says what to do."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from leases.records import create_lease
from leases.store import head_revision, make_engine, session_scope, upgrade

PASSWORD = "S3CRET-PW"
# Nothing listens on port 1: connecting is refused at once.
UNREACHABLE = f"postgresql+psycopg://root:{PASSWORD}@127.0.0.1:1/test"
STORE_COMMANDS = (("db", "current"), ("db", "upgrade"), ("leases", "list"))


def gpulease(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("GPULEASE_")}
    return subprocess.run(
        [sys.executable, "-m", "gpulease", *args], capture_output=True, text=True, timeout=60,
        env=clean | (env or {}),
    )


def one_error(result: subprocess.CompletedProcess, *, code: int = 1) -> str:
    """Check the command failed with one plain error, no traceback and no password; return it."""
    assert result.returncode == code, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    assert PASSWORD not in result.stdout + result.stderr
    return result.stderr


def with_password(url: str) -> str:
    """The URL with a password (PostgreSQL's trust authentication ignores it; SQLite has none)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return url
    return parsed.set(password=PASSWORD).render_as_string(hide_password=False)


def test_db_upgrade_then_list_leases(db_url, now):
    first = gpulease("db", "upgrade", "--database-url", db_url)
    assert first.returncode == 0, first.stderr
    assert "migrated from empty to" in first.stdout
    again = gpulease("db", "upgrade", "--database-url", db_url)
    assert "already at revision" in again.stdout
    assert gpulease("db", "current", "--database-url", db_url).returncode == 0

    engine = make_engine(db_url)
    with session_scope(engine) as session:
        create_lease(
            session,
            namespace="alice-nb",
            cluster="sandbox",
            requester="U0ALICE",
            team="ml-research",
            tier="h100-1g",
            units=2,
            duration=timedelta(days=1),
            now=now,
        )
    engine.dispose()
    listed = gpulease("leases", "list", "--database-url", db_url, "--json")
    assert listed.returncode == 0, listed.stderr
    leases = json.loads(listed.stdout)["leases"]
    assert [(x["namespace"], x["state"], x["units"]) for x in leases] == [("alice-nb", "requested", 2)]
    live = gpulease("leases", "list", "--database-url", db_url, "--live", "--state", "active", "--json")
    assert json.loads(live.stdout)["leases"] == []
    human = gpulease("leases", "list", "--database-url", db_url)
    assert "alice-nb" in human.stdout


@pytest.mark.parametrize("command", STORE_COMMANDS)
def test_an_unreachable_store_is_one_error_with_the_password_hidden(command):
    stderr = one_error(gpulease(*command, "--database-url", UNREACHABLE))
    assert "the state store at postgresql+psycopg://root:***@127.0.0.1:1/test" in stderr
    assert "connection failed: connection to server at \"127.0.0.1\", port 1 failed" in stderr
    assert "check that the database is running and reachable there, and that --database-url is right" in stderr


def test_the_services_hide_the_password_when_the_store_is_unreachable():
    env = {"GPULEASE_DATABASE_URL": UNREACHABLE, "GPULEASE_BROKER_URL": f"redis://:{PASSWORD}@127.0.0.1:1/0"}
    stderr = one_error(gpulease("worker", env=env))
    assert "cannot start on the state store at postgresql+psycopg://root:***@127.0.0.1:1/test" in stderr


def test_database_url_option_is_checked_like_the_setting():
    stderr = one_error(gpulease("db", "current", "--database-url", f"mysql://u:{PASSWORD}@x/y"), code=2)
    assert "--database-url" in stderr and "only SQLite (sqlite:///path) and PostgreSQL" in stderr


def test_a_missing_driver_is_one_error():
    stderr = one_error(gpulease("leases", "list", "--database-url", f"postgresql+nosuch://u:{PASSWORD}@x/y"))
    assert "cannot list leases in the state store at postgresql+nosuch://u:***@x/y" in stderr
    assert "its database driver is not available" in stderr and "postgresql+psycopg://" in stderr


@pytest.mark.parametrize("command", [("db", "current"), ("leases", "list"), ("demand",)])
def test_a_mistyped_sqlite_path_is_not_created(tmp_path: Path, command):
    store = tmp_path / "gpulease-typo.db"
    url = f"sqlite:///{store}"
    args = ("--database-url", url) if command != ("demand",) else ()
    stderr = one_error(gpulease(*command, *args, env={"GPULEASE_DATABASE_URL": url}))
    assert f"no state store at {store}; run `gpulease db upgrade` to create one there" in stderr
    assert not store.exists()


def test_upgrade_into_a_missing_directory_says_which(tmp_path: Path):
    store = tmp_path / "nowhere" / "gpulease.db"
    stderr = one_error(gpulease("db", "upgrade", "--database-url", f"sqlite:///{store}"))
    assert f"the directory {store.parent} does not exist; create it, or fix --database-url" in stderr


def test_a_store_behind_this_release_is_reported_before_any_query(db_url, tmp_path: Path):
    upgrade(db_url, revision="0003")  # before lease.asked_tier existed
    url = with_password(db_url)
    behind = f"is at revision 0003, behind this release's newest ({head_revision()}); run `gpulease db upgrade`"
    assert behind in one_error(gpulease("leases", "list", "--database-url", url))
    assert behind in one_error(gpulease("demand", env={"GPULEASE_DATABASE_URL": url}))
    assert "0003: behind" in gpulease("db", "current", "--database-url", url).stdout


def test_a_store_newer_than_this_release_is_not_called_behind(db_url):
    upgrade(db_url)
    engine = make_engine(db_url)
    with engine.begin() as connection:
        connection.exec_driver_sql("UPDATE alembic_version SET version_num = '9999'")
    engine.dispose()
    url = with_password(db_url)
    newer = f"is at revision 9999, newer than this release's newest ({head_revision()}); run the gpulease release"
    for command in STORE_COMMANDS:
        stderr = one_error(gpulease(*command, "--database-url", url))
        assert newer in stderr and "behind" not in stderr


def test_upgrade_to_an_unknown_revision_is_one_error(db_url):
    stderr = one_error(gpulease("db", "upgrade", "--database-url", with_password(db_url), "--revision", "bogus"))
    assert "cannot migrate the state store at" in stderr and "to revision bogus" in stderr
    assert f"Can't locate revision identified by 'bogus'; use head (this release's newest, {head_revision()})" in stderr
