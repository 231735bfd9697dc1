"""The notification outbox: steps add messages in their own transaction; a dispatcher sends.

A message's key makes it once-only, so a step that runs twice (redelivery, retry, a second
worker) adds nothing the second time. Delivery sends each unsent message, in order per lease
and recipient, and stamps it. A failed send is tried again after a pause that doubles from
30 s to 15 min, so an outage of Slack does not use up its tries; a message still unsent a
day after it was written is given up, and the admins are told which.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import and_, case, exists, or_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, select

from config.durations import format_duration
from leases.models import Lease, OutboxMessage
from leases.ports import MessageRef, Notice, Notifier
from leases.store import session_scope
from workflows.metrics import NOTIFY_FAILURES
from workflows.runtime import Runtime

logger = logging.getLogger(__name__)

Target = Literal["requester", "approval_card", "approval_update", "admins"]
FIRST_PAUSE = timedelta(seconds=30)
MAX_PAUSE = timedelta(minutes=15)
GIVE_UP_AFTER = timedelta(days=1)
# How long a dispatcher may take over one send (a Retry-After wait included) before the message
# is tried again by another.
CLAIM_FOR = timedelta(minutes=15)


def add(
    session: Session,
    *,
    key: str,
    target: Target,
    notice: Notice,
    now: datetime,
    lease_id: str | None = None,
) -> bool:
    """Queue a notice under a unique key; False (and nothing added) if the key exists."""
    if session.exec(select(OutboxMessage.id).where(OutboxMessage.key == key)).first() is not None:
        return False
    row = OutboxMessage(
        key=key,
        lease_id=lease_id,
        kind=notice.kind,
        payload={"target": target, "notice": _notice_json(notice)},
        created_at=now,
    )
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError:
        return False  # a concurrent step added the same key first
    return True


def _notice_json(notice: Notice) -> dict[str, Any]:
    data = asdict(notice)
    data["actions"] = list(notice.actions)
    return data


def _notice(payload: dict[str, Any]) -> Notice:
    raw = dict(payload["notice"])
    raw["actions"] = tuple(raw.get("actions") or ())
    return Notice(**raw)


def deliver_pending(rt: Runtime, *, limit: int = 200) -> int:
    """Send the due unsent messages oldest first; return how many were sent.

    Each message is claimed in a short transaction (its next try is put off by `CLAIM_FOR`),
    sent with no transaction open, then stamped in another: a slow chat service holds no lock
    on the store, and on SQLite (one writer at a time) it holds up no other writer. An unsent
    message (claimed, pausing after a failure or due) holds back the later ones of its lease
    and recipient, checked by the statement that claims, so their order is kept across
    dispatchers too; a dispatcher that dies mid-send leaves its claim to run out, and the
    message is tried again.

    A round sends at most the first message of each lease and recipient, and other
    dispatchers skip the ones held back by a claim, so the claim's holder goes on to them:
    after a round that sent anything it looks again, until a round sends nothing.
    """
    sent = 0
    while sent < limit:
        sent_now = _deliver_round(rt, limit=limit - sent)
        if sent_now == 0:
            break
        sent += sent_now
    return sent


def _deliver_round(rt: Runtime, *, limit: int) -> int:
    """Send what is due now, oldest first, once each; return how many were sent."""
    sent = 0
    now = rt.now()
    with session_scope(rt.engine) as session:
        # Only the first unsent message of each lane, once due: however many pause, or wait
        # behind one that pauses, the due ones of other lanes are still reached.
        due = session.exec(
            select(OutboxMessage.id)
            .where(_claimable(now))
            .order_by(OutboxMessage.id)
            .limit(limit)
        ).all()
    for message_id in due:
        claim = _claim(rt, message_id)
        if claim is None:  # sent meanwhile, or another dispatcher has it or an earlier one
            continue
        try:
            ref = _send(rt.notifier, claim)
        except Exception as exc:  # noqa: BLE001 - any delivery failure is retried later
            with session_scope(rt.engine) as session:
                row = session.get(OutboxMessage, message_id, with_for_update=True)
                if row is not None and row.sent_at is None:
                    _failed(session, row, exc, now=rt.now())
            continue
        _stamp(rt, claim, ref)
        sent += 1
    return sent


def _lane_of(message: type[OutboxMessage]) -> Any:
    """Return, in SQL, the stream a message keeps its order in: the requester's thread, the
    approval card (posted, then updated), or the admins' channel. A stuck card does not hold
    up the requester's messages."""
    target = col(message.payload)["target"].as_string()
    return case((target.like("approval%"), "card"), else_=target)


def _claimable(now: datetime) -> Any:
    """SQL condition: a message is due and unsent, and no earlier message of its lease and
    lane is unsent, whether it is being sent, pausing after a failure or due as well.

    Checked where a message is claimed, in the claiming statement itself: between two
    statements another dispatcher may claim the earlier message, and the later one would go
    first. A message that is unsent stays so until it is sent or given up, so a check that
    sees it unsent is never wrong to wait.
    """
    earlier = aliased(OutboxMessage)
    return and_(
        col(OutboxMessage.sent_at).is_(None),
        col(OutboxMessage.given_up_at).is_(None),
        or_(col(OutboxMessage.next_attempt_at).is_(None), col(OutboxMessage.next_attempt_at) <= now),
        ~exists().where(
            col(earlier.lease_id) == col(OutboxMessage.lease_id),  # never true of no lease (admins)
            col(earlier.id) < col(OutboxMessage.id),
            col(earlier.sent_at).is_(None),
            col(earlier.given_up_at).is_(None),
            _lane_of(earlier) == _lane_of(OutboxMessage),
        ),
    )


def _failed(session: Session, row: OutboxMessage, exc: Exception, *, now: datetime) -> None:
    """Record a failed send: try again after a longer pause, or give the message up."""
    row.attempts += 1
    row.last_error = f"{type(exc).__name__}: {exc}"[:2000]
    target = row.payload.get("target", "?")
    NOTIFY_FAILURES.labels(target, type(exc).__name__).inc()
    fields = {"key": row.key, "lease_id": row.lease_id}
    if now - row.created_at < GIVE_UP_AFTER:
        row.next_attempt_at = now + min(MAX_PAUSE, FIRST_PAUSE * 2 ** min(row.attempts - 1, 16))
        logger.warning(
            "notify.failed key=%s attempts=%d error=%s",
            row.key,
            row.attempts,
            row.last_error,
            extra={"event": "notify.failed", **fields},
        )
        return
    row.given_up_at = now
    logger.error(
        "notify.given_up key=%s attempts=%d error=%s",
        row.key,
        row.attempts,
        row.last_error,
        extra={"event": "notify.given_up", **fields},
    )
    if target != "admins":  # a lost admin notice is in the log; telling admins of it would loop
        about = f" of lease {row.lease_id}" if row.lease_id else ""
        add(
            session,
            key=f"given-up:{row.id}",
            target="admins",
            now=now,
            notice=Notice(
                kind="admin.notice_lost",
                text=f"A {row.kind} message{about} for {target} could not be sent for "
                f"{format_duration(GIVE_UP_AFTER)} and was given up ({row.attempts} tries; last error: "
                f"{row.last_error[:300]}). Tell them yourself if it still matters.",
                data={"key": row.key, "lease": row.lease_id, "kind": row.kind},
            ),
        )


@dataclass(frozen=True)
class _Claim:
    """A message claimed for sending, with what its sending needs from its lease."""

    id: int
    lease_id: str | None
    target: str
    notice: Notice
    requester: str | None = None
    thread: MessageRef | None = None
    card: MessageRef | None = None


def _claim(rt: Runtime, message_id: int) -> _Claim | None:
    """Claim a due unsent message (None: sent, given up or claimed meanwhile, or behind an
    unsent one of its lane)."""
    now = rt.now()
    with session_scope(rt.engine) as session:
        claimed = session.exec(
            update(OutboxMessage)
            .where(col(OutboxMessage.id) == message_id, _claimable(now))
            .values(next_attempt_at=now + CLAIM_FOR)
        )
        if claimed.rowcount != 1:
            return None
        row = session.get(OutboxMessage, message_id)
        assert row is not None
        claim = _Claim(
            id=message_id, lease_id=row.lease_id, target=row.payload["target"], notice=_notice(row.payload)
        )
        lease = session.get(Lease, row.lease_id) if row.lease_id else None
        if lease is None:
            return claim
        return replace(
            claim,
            requester=lease.requester,
            thread=MessageRef(lease.thread_channel, lease.thread_ts) if lease.thread_ts else None,
            card=MessageRef(lease.approval_channel, lease.approval_ts) if lease.approval_ts else None,
        )


def _send(notifier: Notifier, claim: _Claim) -> MessageRef | None:
    """Send a claimed message; return the message it posted, where the lease keeps it."""
    target, notice = claim.target, claim.notice
    if target == "admins":
        notifier.to_admins(notice=notice)
        return None
    if claim.lease_id is None or claim.requester is None:
        raise LookupError(f"a {target} message needs its lease, and lease {claim.lease_id} is gone")
    if target == "requester":
        ref = notifier.to_requester(user=claim.requester, thread=claim.thread, notice=notice)
        return ref if claim.thread is None else None
    if target == "approval_card":
        return notifier.approval_card(channel=notice.data.get("channel") if notice.data else None, notice=notice)
    if target == "approval_update":
        if claim.card is None:
            raise LookupError("the approval card has not been posted yet")
        notifier.update_approval_card(card=claim.card, notice=notice)
        return None
    raise ValueError(f"unknown outbox target {target!r}")


def _stamp(rt: Runtime, claim: _Claim, ref: MessageRef | None) -> None:
    """Mark a message sent, and keep on its lease the thread or card it started."""
    with session_scope(rt.engine) as session:
        row = session.get(OutboxMessage, claim.id, with_for_update=True)
        if row is not None:
            row.sent_at = rt.now()
            row.attempts += 1
        if ref is None or claim.lease_id is None:
            return
        lease = session.get(Lease, claim.lease_id, with_for_update=True)
        if lease is None:
            return
        if claim.target == "requester" and not lease.thread_ts:
            lease.thread_channel, lease.thread_ts = ref.channel, ref.ts
        elif claim.target == "approval_card":
            lease.approval_channel, lease.approval_ts = ref.channel, ref.ts
