"""The lease lifecycle: moving a lease between states, deciding a request, extending and
expiring leases. Every state change goes through `transition`, which checks the move against
`leases.states.ALLOWED` and writes the audit event in the caller's transaction. Requests are
created by `leases.records.create_lease`.

Imported by workflows, bot and gpulease. Functions take an open session and never commit.
A `lease` argument must belong to that session (load it with `records.get_lease`). Changes lock the
lease row first (`SELECT ... FOR UPDATE` on PostgreSQL; SQLite transactions are serialised by
leases.store), so two workers cannot both decide or move the same lease.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from config.durations import format_duration, format_moment
from leases.errors import AlreadyDecided, DomainError, InvalidTransition, NotAuthorised
from leases.models import ApprovalDecision, AuditEvent, Lease, SentWarning
from leases.records import POLICY_APPROVER, add_audit_event
from leases.states import (
    ALLOWED,
    LIVE_STATES,
    TERMINAL_STATES,
    UNDECIDED_STATES,
    Decision,
    LeaseState,
    check_transition,
    is_allowed,
)

__all__ = [
    "ALLOWED",
    "LIVE_STATES",
    "TERMINAL_STATES",
    "UNDECIDED_STATES",
    "Decision",
    "LeaseState",
    "check_transition",
    "claim_warning",
    "decide",
    "expire_unapproved",
    "extend",
    "is_allowed",
    "outcome_message",
    "transition",
]


def transition(
    session: Session,
    *,
    lease: Lease,
    to: LeaseState,
    actor: str,
    reason: str | None,
    now: datetime,
    data: dict[str, Any] | None = None,
    action: str | None = None,
) -> AuditEvent:
    """Move a lease to state `to`, recording who, when and why, or raise InvalidTransition."""
    # A refused move raises before anything is written, so it changes nothing.
    to = LeaseState(to)
    # Re-read the state under the row lock: the caller's copy may predate a change another
    # worker committed. Only these attributes are reloaded, so the caller's other pending
    # changes to the lease (expiry, step) survive and are written with the transition.
    session.refresh(lease, attribute_names=["state", "version"], with_for_update=True)
    from_state = lease.state
    check_transition(from_state, to)
    lease.state = to
    lease.updated_at = now
    lease.version += 1
    if to in (LeaseState.APPROVED, LeaseState.DENIED) and lease.decided_at is None:
        lease.decided_at = now
    if to is LeaseState.ACTIVE and lease.active_at is None:
        lease.active_at = now
        if lease.expires_at is None:
            lease.expires_at = now + timedelta(seconds=lease.duration_seconds)
    if to is LeaseState.FAILED:
        lease.failure_reason = reason
    return add_audit_event(
        session,
        lease=lease,
        actor=actor,
        action=action or f"lease.{to.value}",
        now=now,
        from_state=from_state,
        reason=reason,
        data=data,
    )


def decide(
    session: Session,
    *,
    lease: Lease,
    approver: str,
    approve: bool,
    reason: str | None,
    now: datetime,
    rule: str | None = None,
) -> ApprovalDecision:
    """Approve or deny a request, refusing the requester's own and any second decision."""
    # Whether `approver` may approve at all is the policy's question, asked by the caller.
    # Lock and reload everything, so of two approvers clicking at once the second sees the
    # first one's decision.
    session.refresh(lease, with_for_update=True)
    if lease.state not in UNDECIDED_STATES:
        raise _already_decided(session, lease)
    if approver == lease.requester:
        raise NotAuthorised("you cannot approve or deny your own request", field="approver")
    reason = (reason or "").strip() or None
    if not approve and reason is None:
        raise DomainError("say why the request is denied", field="reason")
    decision = ApprovalDecision(
        lease_id=lease.id,
        approver=approver,
        decision=Decision.APPROVE if approve else Decision.DENY,
        reason=reason,
        rule=rule,
        decided_at=now,
    )
    session.add(decision)
    transition(
        session,
        lease=lease,
        to=LeaseState.APPROVED if approve else LeaseState.DENIED,
        actor=approver,
        reason=reason or (f"auto-approval rule {rule}" if rule else None),
        now=now,
        data={"rule": rule} if rule else None,
    )
    return decision


def _already_decided(session: Session, lease: Lease) -> AlreadyDecided:
    earlier = session.exec(
        select(ApprovalDecision).where(ApprovalDecision.lease_id == lease.id)
    ).first()
    # Said as a sentence; whoever shows it adds that nothing changed (bot.errors.user_message).
    if earlier is None:
        return AlreadyDecided(outcome_message(session, lease))
    verb = "approved" if earlier.decision is Decision.APPROVE else "denied"
    by = "by policy" if earlier.approver == POLICY_APPROVER else f"by <@{earlier.approver}>"
    when = format_moment(earlier.decided_at)
    return AlreadyDecided(f"This request was already {verb} {by} at {when}.")


# A lease's state as its requester or an approver is told it, after "This request is already".
PLAIN_STATES: dict[LeaseState, str] = {
    LeaseState.REQUESTED: "recorded, not yet sent to the approvers",
    LeaseState.PENDING_APPROVAL: "waiting for an approver",
    LeaseState.APPROVED: "approved",
    LeaseState.PLACING: "approved and being placed",
    LeaseState.WAITLISTED: "approved and waiting for capacity",
    LeaseState.PROVISIONING: "approved and its namespace being created",
    LeaseState.ACTIVE: "running",
    LeaseState.EXPIRING: "running and about to expire",
    LeaseState.RECLAIMING: "being reclaimed",
    LeaseState.RECLAIMED: "over: its namespace was reclaimed",
    LeaseState.DENIED: "denied",
    LeaseState.CANCELLED: "cancelled",
    LeaseState.EXPIRED_UNAPPROVED: "expired without a decision",
    LeaseState.FAILED: "failed",
}

_SLACK_USER = re.compile(r"[UW][A-Z0-9_]+")


def _who(actor: str) -> str:
    """Name an actor in a message: a Slack user as a mention, the platform by its name."""
    return f"<@{actor}>" if _SLACK_USER.fullmatch(actor) else actor


def outcome_message(session: Session, lease: Lease) -> str:
    """Say, as a sentence, where a lease is, with who put it there and when for the ends that
    come without a decision (withdrawn, cancelled, expired, failed), e.g. "This request was
    withdrawn by its requester at 2026-03-02 09:00 UTC." """
    event = session.exec(
        select(AuditEvent)
        .where(AuditEvent.lease_id == lease.id, AuditEvent.to_state == lease.state)
        .order_by(col(AuditEvent.id).desc())
    ).first()
    if event is None:
        return f"This request is already {PLAIN_STATES[lease.state]}."
    when = format_moment(event.at)
    reason = (event.reason or "").strip().rstrip(".")
    if lease.state is LeaseState.EXPIRED_UNAPPROVED:
        return f"This request expired without a decision at {when}."
    if lease.state is LeaseState.CANCELLED and event.actor == lease.requester:
        return f"This request was withdrawn by its requester at {when}."
    if lease.state is LeaseState.CANCELLED:
        why = f": {reason}" if reason and reason != "cancelled" else ""
        return f"This request was cancelled by {_who(event.actor)} at {when}{why}."
    if lease.state is LeaseState.FAILED:
        return f"This request failed at {when}" + (f": {reason}." if reason else ".")
    return f"This request is already {PLAIN_STATES[lease.state]}."


def expire_unapproved(
    session: Session, *, now: datetime, timeout: timedelta, actor: str = "system"
) -> list[Lease]:
    """Move every request pending approval for `timeout` or longer to expired_unapproved."""
    statement = (
        select(Lease)
        .where(Lease.state == LeaseState.PENDING_APPROVAL, Lease.created_at <= now - timeout)
        .order_by(col(Lease.created_at), col(Lease.id))
        # A lease an approver is deciding right now is skipped; the next sweep sees the outcome.
        .with_for_update(skip_locked=True)
        .execution_options(populate_existing=True)
    )
    expired = list(session.exec(statement).all())
    for lease in expired:
        transition(
            session,
            lease=lease,
            to=LeaseState.EXPIRED_UNAPPROVED,
            actor=actor,
            reason=f"no decision within {format_duration(timeout)}",
            now=now,
        )
    return expired


def extend(
    session: Session,
    *,
    lease: Lease,
    by: timedelta,
    actor: str,
    now: datetime,
    reason: str | None = None,
) -> AuditEvent:
    """Push an active or expiring lease's expiry back by `by` (policy limits are the caller's)."""
    if by <= timedelta(0):
        raise DomainError(f"extend by a positive duration, not {by}", field="duration")
    # Lock before reading the expiry: two extensions at once must both count.
    session.refresh(lease, with_for_update=True)
    # active -> active is the extension; provisioning -> active is the workflow's to make, once
    # the namespace exists, so it does not count here.
    if lease.state not in (LeaseState.ACTIVE, LeaseState.EXPIRING):
        raise InvalidTransition(
            f"{lease.namespace} is {lease.state}; only an active or expiring lease can be extended",
            field="state",
        )
    new_expiry = (lease.expires_at or now) + by
    event = transition(
        session,
        lease=lease,
        to=LeaseState.ACTIVE,
        actor=actor,
        reason=reason,
        now=now,
        action="lease.extended",
        data={"by_seconds": int(by.total_seconds()), "expires_at": new_expiry.isoformat()},
    )
    lease.expires_at = new_expiry
    lease.extensions += 1
    lease.extended_seconds += int(by.total_seconds())
    # The warnings were for the old expiry; the new one gets its own.
    session.execute(delete(SentWarning).where(col(SentWarning.lease_id) == lease.id))
    session.flush()
    return event


def claim_warning(session: Session, *, lease: Lease, offset_seconds: int, now: datetime) -> bool:
    """Claim the expiry warning `offset_seconds` before expiry; False if already sent."""
    # The caller sends inside the same transaction, so a failed send rolls the claim back and
    # the next sweep tries again.
    sent = select(SentWarning).where(
        SentWarning.lease_id == lease.id, SentWarning.offset_seconds == offset_seconds
    )
    if session.exec(sent).first() is not None:
        return False
    try:
        with session.begin_nested():
            session.add(SentWarning(lease_id=lease.id, offset_seconds=offset_seconds, sent_at=now))
    except IntegrityError:
        return False
    return True


