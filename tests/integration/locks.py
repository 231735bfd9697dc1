"""PostgreSQL row locks in tests: wait, with a bound, until one session waits for another's,
so that two transactions interleave the same way on every run."""

from __future__ import annotations

import time

from sqlalchemy import text


def wait_until_blocked_by(engine, pid: int, *, within_s: float = 10.0) -> None:
    """Poll PostgreSQL until a session waits for a lock that backend `pid` holds."""
    deadline = time.monotonic() + within_s
    with engine.connect() as connection:
        while time.monotonic() < deadline:
            blocked = connection.execute(
                text("SELECT count(*) FROM pg_stat_activity WHERE :pid = ANY(pg_blocking_pids(pid))"),
                {"pid": pid},
            ).scalar_one()
            if blocked:
                return
            # pg_stat_activity is read once per transaction: end it, or a session that starts
            # waiting later is never seen.
            connection.rollback()
            time.sleep(0.01)
    raise AssertionError(f"no session waited for the locks of backend {pid} within {within_s}s")
