"""Two submissions at once on PostgreSQL: the second one decides only after the first has
committed, and from what it committed (SQLite serialises writing transactions from their
start, so they cannot interleave there)."""

from __future__ import annotations

import threading
import time

import pytest
import yaml
from sqlalchemy import text
from sqlmodel import select

from config.policy import parse_policy
from config.settings import EXAMPLE_POLICY
from leases.models import Lease
from leases.reservations import live_leases_of
from leases.store import session_scope
from tests.integration.workflows.test_pipeline import request
from workflows import api
from workflows.steps import requests
from workflows.steps.requests import RequestRefused


def blocked_or_done(engine, pid: int, thread: threading.Thread, *, within_s: float = 10.0) -> None:
    """Poll until `thread` waits for a lock that backend `pid` holds, or has finished."""
    deadline = time.monotonic() + within_s
    with engine.connect() as connection:
        while time.monotonic() < deadline and thread.is_alive():
            blocked = connection.execute(
                text("SELECT count(*) FROM pg_stat_activity WHERE :pid = ANY(pg_blocking_pids(pid))"),
                {"pid": pid},
            ).scalar_one()
            # pg_stat_activity is read once per transaction: end it, or a backend that connects
            # after the first look is never seen.
            connection.rollback()
            if blocked:
                return
            time.sleep(0.01)
    assert not thread.is_alive(), f"the other thread neither waited for backend {pid} nor finished within {within_s}s"


def submit_while_recording(rt, monkeypatch, first, second) -> tuple[object, object]:
    """Submit `first`; once it has recorded its lease, and before it commits, submit `second`
    on another thread and let the first commit when the second waits (or is done). Return
    both outcomes: a Submitted or the exception raised."""
    if rt.engine.dialect.name != "postgresql":
        pytest.skip("SQLite serialises writing transactions from their start: no interleaving")
    outcomes: dict[str, object] = {}

    def run(name, req):
        try:
            outcomes[name] = api.submit(req)
        except Exception as exc:  # noqa: BLE001 - the outcome is what the test checks
            outcomes[name] = exc

    other = threading.Thread(target=run, args=("second", second))
    record = requests.create_lease

    def record_then_let_the_other_in(session, **kw):
        lease = record(session, **kw)
        if not other.is_alive() and "second" not in outcomes:
            pid = session.connection().execute(text("SELECT pg_backend_pid()")).scalar_one()
            other.start()
            blocked_or_done(rt.engine, pid, other)
        return lease

    monkeypatch.setattr(requests, "create_lease", record_then_let_the_other_in)
    run("first", first)
    other.join(30)
    assert not other.is_alive()
    return outcomes["first"], outcomes["second"]


def test_a_second_delivery_of_a_request_while_the_first_commits_is_told_it_is_recorded(
    make_runtime, monkeypatch
):
    rt = make_runtime()
    req = request(idempotency_key="slack-view-1")
    first, second = submit_while_recording(rt, monkeypatch, req, req)
    assert not isinstance(first, Exception), first
    assert not isinstance(second, Exception), second
    assert (second.lease_id, second.duplicate) == (first.lease_id, True)
    with session_scope(rt.engine) as session:
        assert [lease.id for lease in session.exec(select(Lease)).all()] == [first.lease_id]


def test_requests_to_two_teams_at_once_pass_the_per_user_limit_once(make_runtime, monkeypatch):
    data = yaml.safe_load(EXAMPLE_POLICY.read_text())
    for team in data["teams"]:
        team["members"] = sorted({*team.get("members", []), "U0ALICE"})
    data["limits"]["max_live_leases_per_user"] = 1
    rt = make_runtime(policy=parse_policy(data))
    first, second = submit_while_recording(
        rt,
        monkeypatch,
        request(team="ml-research", namespace="alice-nb"),
        request(team="vision", namespace="alice-vision"),
    )
    assert not isinstance(first, Exception), first
    assert isinstance(second, RequestRefused), second
    assert [e.field for e in second.errors] == ["requester"]
    with session_scope(rt.engine) as session:
        assert [lease.id for lease in live_leases_of(session, requester="U0ALICE")] == [first.lease_id]
