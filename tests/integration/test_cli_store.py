"""`gpulease db upgrade` and `gpulease leases list` against SQLite and PostgreSQL."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import timedelta

from leases.records import create_lease
from leases.store import make_engine, session_scope


def gpulease(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "gpulease", *args], capture_output=True, text=True, timeout=60
    )


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
