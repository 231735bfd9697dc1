"""The outbox through a chat outage: failed sends pause longer each time instead of using up
their tries within minutes, keep their order per lease, and are given up (with the admins
told) only a day after they were written."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from sqlmodel import col, select

from leases.models import OutboxMessage
from leases.ports import MessageRef, Notice
from leases.store import session_scope
from tests.integration.workflows.test_pipeline import request
from workflows import api, outbox
from workflows.notify import LoggingNotifier


@dataclass
class Outage:
    """A chat service whose sends to the targets in `down` fail; the rest work."""

    down: set[str]
    inner: LoggingNotifier = field(default_factory=LoggingNotifier)
    tries: int = 0

    def _check(self, target: str) -> None:
        if target in self.down:
            self.tries += 1
            raise ConnectionError("chat service unreachable")

    def to_requester(self, *, user: str, thread: MessageRef | None, notice: Notice) -> MessageRef:
        self._check("requester")
        return self.inner.to_requester(user=user, thread=thread, notice=notice)

    def approval_card(self, *, channel: str | None, notice: Notice) -> MessageRef:
        self._check("approval_card")
        return self.inner.approval_card(channel=channel, notice=notice)

    def update_approval_card(self, *, card: MessageRef, notice: Notice) -> None:
        self._check("approval_update")
        self.inner.update_approval_card(card=card, notice=notice)

    def to_admins(self, *, notice: Notice) -> None:
        self._check("admins")
        self.inner.to_admins(notice=notice)


def _rows(rt, lease_id: str) -> list[OutboxMessage]:
    with session_scope(rt.engine) as session:
        rows = session.exec(
            select(OutboxMessage).where(OutboxMessage.lease_id == lease_id).order_by(col(OutboxMessage.id))
        ).all()
        session.expunge_all()
        return list(rows)


def test_an_outage_of_minutes_loses_nothing_and_order_is_kept(make_runtime, clock):
    rt = make_runtime()
    chat = rt.notifier = Outage(down={"requester"})
    s = api.submit(request())
    rt.queue.drain()
    assert chat.tries == 1  # the first message failed; the lease's later ones wait behind it
    for _ in range(30):  # a dispatch every sweep and after every step: no extra tries
        outbox.deliver_pending(rt)
    assert chat.tries == 1
    clock.advance(timedelta(seconds=31))
    outbox.deliver_pending(rt)
    first = _rows(rt, s.lease_id)[0]
    assert chat.tries == 2 and first.attempts == 2
    assert first.next_attempt_at == clock() + timedelta(seconds=60)  # the pause doubles
    chat.down = set()
    clock.advance(timedelta(minutes=10))
    outbox.deliver_pending(rt)
    rows = _rows(rt, s.lease_id)
    assert all(row.sent_at is not None for row in rows)
    assert chat.inner.kinds("requester") == [row.kind for row in rows if row.payload["target"] == "requester"]
    assert chat.inner.kinds("admins") == []


def test_a_message_failing_for_a_day_is_given_up_and_the_admins_are_told(make_runtime, clock):
    rt = make_runtime()
    chat = rt.notifier = Outage(down={"requester"})
    s = api.submit(request())
    rt.queue.drain()
    dispatches = 12 * 24 + 1  # every 5 minutes for a day
    for _ in range(dispatches):
        clock.advance(timedelta(minutes=5))
        outbox.deliver_pending(rt)
    first = _rows(rt, s.lease_id)[0]
    assert first.given_up_at is not None and first.sent_at is None
    assert 96 <= first.attempts <= 110  # paused between tries, up to 15 minutes
    lost = [sent.notice for sent in chat.inner.sent if sent.notice.kind == "admin.notice_lost"]
    # The later messages of the lease waited a day behind it: they get one try, then go too.
    [about_first] = [notice for notice in lost if notice.data["key"] == first.key]
    assert "could not be sent for 1d" in about_first.text and "ConnectionError" in about_first.text


def test_a_card_that_cannot_be_updated_does_not_hold_up_the_requesters_messages(make_runtime, clock):
    rt = make_runtime()
    chat = rt.notifier = Outage(down={"approval_update"})
    s = api.submit(request(tier="h100-3g", duration=timedelta(days=2)))  # an approver's card
    rt.queue.drain()
    api.decide(lease_id=s.lease_id, approver="U0APPROVER1", approve=True)
    rt.queue.drain()
    assert chat.tries >= 1  # the card's 'approved' update failed
    assert "lease.active" in chat.inner.kinds("requester")
    assert chat.inner.kinds("approval_update") == []


def test_messages_pausing_after_failures_do_not_crowd_out_new_ones(make_runtime, clock):
    rt = make_runtime()
    chat = rt.notifier = Outage(down={"admins"})  # e.g. the admin channel was archived
    with session_scope(rt.engine) as session:
        for i in range(250):
            outbox.add(session, key=f"admin-{i}", target="admins", now=clock(), notice=Notice(kind="admin.x", text="x"))
    outbox.deliver_pending(rt)
    outbox.deliver_pending(rt)
    assert chat.tries == 250  # each tried once, then pausing
    s = api.submit(request())
    rt.queue.drain()
    assert "lease.active" in chat.inner.kinds("requester")
    assert all(row.sent_at is not None for row in _rows(rt, s.lease_id))
