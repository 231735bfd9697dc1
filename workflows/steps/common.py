"""Helpers shared by the steps: loading leases, marking progress, enqueueing the next step."""

from __future__ import annotations

import logging
from datetime import datetime

from sqlmodel import Session

from leases.lifecycle import transition
from leases.models import Lease
from leases.ports import Notice
from leases.records import get_lease
from leases.states import LeaseState
from workflows import outbox
from workflows.runtime import Runtime
from workflows.views import lease_view

logger = logging.getLogger("workflows.steps")

SYSTEM = "gpulease"
RUNNING = (LeaseState.ACTIVE, LeaseState.EXPIRING)


def locked(session: Session, lease_id: str) -> Lease:
    """Load a lease with its row locked (NotFound if there is none)."""
    return get_lease(session, lease_id=lease_id, lock=True)


def mark_step(lease: Lease, step: str | None, now: datetime) -> None:
    """Record the step in progress (None when the lease waits on nothing of ours)."""
    lease.step = step
    lease.step_started_at = now if step else None


def enqueue(rt: Runtime, task: str, *args: object) -> None:
    """Hand the next step to the task queue (after the current transaction committed)."""
    if rt.enqueue is None:
        logger.warning("step.not_enqueued task=%s args=%s (no queue installed)", task, args)
        return
    rt.enqueue(task, *args)


def log(event: str, lease: Lease, **fields: object) -> None:
    """Log a step event with the lease id and namespace as fields."""
    extra = {"event": event, "lease_id": lease.id, "namespace": lease.namespace, **fields}
    detail = " ".join(f"{k}={v}" for k, v in fields.items())
    logger.info("%s lease=%s namespace=%s %s", event, lease.id, lease.namespace, detail, extra=extra)


def fail_lease(rt: Runtime, session: Session, lease: Lease, *, reason: str, text: str,
               data: dict | None = None) -> None:
    """Mark a lease failed (audit included) and queue the requester's message about it."""
    now = rt.now()
    transition(session, lease=lease, to=LeaseState.FAILED, actor=SYSTEM, reason=reason, now=now, data=data)
    mark_step(lease, None, now)
    outbox.add(
        session, key=f"{lease.id}:failed", target="requester", lease_id=lease.id, now=now,
        notice=Notice(kind="lease.failed", text=text, lease=lease_view(rt, lease), data=data),
    )
