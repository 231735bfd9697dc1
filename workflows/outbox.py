"""The notification outbox: steps add messages in their own transaction; a dispatcher sends.

A message's key makes it once-only, so a step that runs twice (redelivery, retry, a second
worker) adds nothing the second time. Delivery sends each unsent message, in order, and
stamps it; a failed send stays unsent and is tried again by the next dispatch (every sweep).
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from datetime import datetime
from typing import Any, Literal

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from leases.models import Lease, OutboxMessage
from leases.ports import MessageRef, Notice, Notifier
from leases.store import session_scope
from workflows.metrics import NOTIFY_FAILURES
from workflows.runtime import Runtime

logger = logging.getLogger(__name__)

Target = Literal["requester", "approval_card", "approval_update", "admins"]
MAX_ATTEMPTS = 20


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
    """Send unsent messages oldest first; return how many were sent."""
    sent = 0
    blocked: set[str] = set()  # leases whose earlier message failed: keep their order
    with session_scope(rt.engine) as session:
        ids = session.exec(
            select(OutboxMessage.id)
            .where(col(OutboxMessage.sent_at).is_(None), OutboxMessage.attempts < MAX_ATTEMPTS)
            .order_by(OutboxMessage.id)
            .limit(limit)
        ).all()
    for message_id in ids:
        with session_scope(rt.engine) as session:
            row = session.exec(
                select(OutboxMessage)
                .where(OutboxMessage.id == message_id, col(OutboxMessage.sent_at).is_(None))
                .with_for_update(skip_locked=True)
            ).first()
            if row is None:
                continue  # sent meanwhile, or another dispatcher holds it
            if row.lease_id and row.lease_id in blocked:
                continue
            try:
                _send(session, rt.notifier, row)
            except Exception as exc:  # noqa: BLE001 - any delivery failure is retried later
                row.attempts += 1
                row.last_error = f"{type(exc).__name__}: {exc}"[:2000]
                NOTIFY_FAILURES.labels(row.payload.get("target", "?"), type(exc).__name__).inc()
                if row.lease_id:
                    blocked.add(row.lease_id)
                logger.warning(
                    "notify.failed key=%s attempts=%d error=%s",
                    row.key,
                    row.attempts,
                    row.last_error,
                    extra={"event": "notify.failed", "key": row.key, "lease_id": row.lease_id},
                )
                continue
            row.sent_at = rt.now()
            row.attempts += 1
            sent += 1
    return sent


def _send(session: Session, notifier: Notifier, row: OutboxMessage) -> None:
    target = row.payload["target"]
    notice = _notice(row.payload)
    lease = session.get(Lease, row.lease_id, with_for_update=True) if row.lease_id else None
    if target == "requester":
        assert lease is not None
        thread = MessageRef(lease.thread_channel, lease.thread_ts) if lease.thread_ts else None
        ref = notifier.to_requester(user=lease.requester, thread=thread, notice=notice)
        if thread is None and ref is not None:
            lease.thread_channel, lease.thread_ts = ref.channel, ref.ts
    elif target == "approval_card":
        assert lease is not None
        ref = notifier.approval_card(
            channel=notice.data.get("channel") if notice.data else None, notice=notice
        )
        lease.approval_channel, lease.approval_ts = ref.channel, ref.ts
    elif target == "approval_update":
        assert lease is not None
        if not lease.approval_ts:
            raise LookupError("the approval card has not been posted yet")
        notifier.update_approval_card(
            card=MessageRef(lease.approval_channel, lease.approval_ts), notice=notice
        )
    elif target == "admins":
        notifier.to_admins(notice=notice)
    else:
        raise ValueError(f"unknown outbox target {target!r}")
