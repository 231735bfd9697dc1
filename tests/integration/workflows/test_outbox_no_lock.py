"""The outbox calls the chat service with no transaction open: while a send is slow, other
writers (a step on the same lease, a form submission on SQLite's single writer) go ahead, and
a second dispatcher neither sends the claimed message again nor overtakes it."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from types import SimpleNamespace

import pytest
from sqlalchemy import event
from sqlmodel import select

from leases.models import Lease, OutboxMessage
from leases.ports import MessageRef, Notice
from leases.store import make_engine, session_scope
from tests.integration.workflows.test_outbox_retries import Outage, _rows
from tests.integration.workflows.test_pipeline import request
from tests.integration.workflows.test_submit_races import blocked_or_done
from workflows import api, outbox


@dataclass
class Slow(Outage):
    """A chat service that, in the middle of each send to the requester, runs `during` and
    records whether it finished within the bound."""

    during: list = field(default_factory=list)
    finished: list[bool] = field(default_factory=list)

    def to_requester(self, *, user: str, thread: MessageRef | None, notice: Notice) -> MessageRef:
        for work in self.during:
            worker = threading.Thread(target=work, daemon=True)
            worker.start()
            worker.join(timeout=5)
            self.finished.append(not worker.is_alive())
        self.during = []
        return super().to_requester(user=user, thread=thread, notice=notice)


def test_a_slow_send_holds_no_lock_on_the_lease_or_the_store(make_runtime):
    rt = make_runtime()
    chat = rt.notifier = Slow(down=set())
    s = api.submit(request())

    def write_the_lease() -> None:
        with session_scope(rt.engine) as session:
            lease = session.get(Lease, s.lease_id, with_for_update=True)
            assert lease is not None
            lease.reason = lease.reason + " (edited)"

    chat.during = [write_the_lease]
    rt.queue.drain()
    assert chat.finished == [True]  # the write went ahead while the message was being sent
    with session_scope(rt.engine) as session:
        lease = session.get(Lease, s.lease_id)
        assert lease is not None and lease.reason.endswith("(edited)") and lease.thread_ts
    assert all(row.sent_at is not None for row in _rows(rt, s.lease_id))


def test_a_second_dispatcher_neither_repeats_nor_overtakes_a_message_in_flight(make_runtime):
    rt = make_runtime()
    chat = rt.notifier = Slow(down=set())
    s = api.submit(request())
    sent_by_second: list[int] = []
    chat.during = [lambda: sent_by_second.append(outbox.deliver_pending(rt))]
    rt.queue.drain()
    assert chat.finished == [True] and sent_by_second == [0]
    kinds = [row.kind for row in _rows(rt, s.lease_id) if row.payload["target"] == "requester"]
    assert chat.inner.kinds("requester") == kinds  # each once, in order
    with session_scope(rt.engine) as session:
        assert session.exec(select(OutboxMessage).where(OutboxMessage.sent_at.is_(None))).all() == []


def test_the_dispatcher_holding_a_claim_sends_what_queued_up_behind_it(make_runtime, clock):
    rt = make_runtime()
    chat = rt.notifier = Slow(down=set())
    s = api.submit(request())
    rt.queue.drain()

    def add(key: str) -> None:
        with session_scope(rt.engine) as session:
            notice = Notice(kind=f"test.{key}", text=key)
            outbox.add(session, key=key, target="requester", notice=notice, now=clock(), lease_id=s.lease_id)

    sent_by_second: list[int] = []

    def meanwhile() -> None:  # a step queues the next message, and its dispatcher finds it held back
        add("second")
        sent_by_second.append(outbox.deliver_pending(rt))

    add("first")
    chat.during = [meanwhile]
    assert outbox.deliver_pending(rt) == 2  # no later dispatch needed
    assert sent_by_second == [0]
    assert chat.inner.kinds("requester")[-2:] == ["test.first", "test.second"]


@pytest.mark.parametrize("at", range(12))
def test_a_claim_committed_between_a_dispatchers_statements_holds_the_later_messages_back(
    make_runtime, db_url, at
):
    # On PostgreSQL each statement sees what was committed before it started: another
    # dispatcher claims the lease's first message just before this one's statement number
    # `at`, and the message queued behind it waits for it, whichever statement that is.
    rt = make_runtime()
    if rt.engine.dialect.name != "postgresql":
        pytest.skip("SQLite serialises writing transactions from their start: no interleaving")
    s = api.submit(request())  # queues lease.approved for the requester
    rt.queue.pending.clear()
    with session_scope(rt.engine) as session:
        outbox.add(session, key="later", target="requester", lease_id=s.lease_id, now=rt.now(),
                   notice=Notice(kind="test.later", text="later"))
        [first] = session.exec(select(OutboxMessage.id).where(OutboxMessage.key == f"{s.lease_id}:approved")).all()
    other = make_engine(db_url)
    other_dispatcher = SimpleNamespace(engine=other, now=rt.now)
    claimed: list[object] = []
    claiming = threading.Thread(target=lambda: claimed.append(outbox._claim(other_dispatcher, first)))
    statements: list[str] = []

    def claim_first_before_statement_at(conn, cursor, statement, parameters, context, executemany):
        if len(statements) == at:
            # It may have to wait for this round's own claim to commit: go on once it does.
            claiming.start()
            blocked_or_done(other, conn.connection.dbapi_connection.info.backend_pid, claiming)
        statements.append(statement)

    event.listen(rt.engine, "before_cursor_execute", claim_first_before_statement_at)
    try:
        outbox.deliver_pending(rt)
    finally:
        event.remove(rt.engine, "before_cursor_execute", claim_first_before_statement_at)
        if claiming.is_alive():
            claiming.join(10)
        other.dispose()
    assert len(statements) > at, "the dispatcher ran fewer statements than the test steps through"
    sent = rt.notifier.kinds("requester")
    if claimed[0] is not None:  # the other dispatcher has it, and never sends it here
        assert sent == []
    else:  # this dispatcher had it first and sent both, in order
        assert sent == ["lease.approved", "test.later"]
