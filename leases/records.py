"""Recording and reading leases: a new request, loading a lease, the audit trail.

Imported by leases.lifecycle, workflows, bot and gpulease. Functions take an open session and
never commit. State changes after creation are leases.lifecycle's.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from leases.errors import DomainError, NamespaceTaken, NotFound
from leases.models import AuditEvent, Lease, Team
from leases.states import LIVE_STATES, LeaseState

POLICY_APPROVER = "policy"  # the approver recorded when an auto-approval rule decided


def ensure_team(session: Session, *, name: str, now: datetime) -> Team:
    """Return the team row of that name, adding it when it is new."""
    team = session.get(Team, name)
    if team is not None:
        return team
    team = Team(name=name, created_at=now)
    try:
        with session.begin_nested():
            session.add(team)
    except IntegrityError:
        # Another transaction added it between our read and our insert.
        team = session.get(Team, name, populate_existing=True)
        if team is None:
            raise
    return team


def get_lease(session: Session, *, lease_id: str, lock: bool = False) -> Lease:
    """Load a lease by id (locking its row when asked), or raise NotFound."""
    lease = session.get(Lease, lease_id, with_for_update=lock or None, populate_existing=lock)
    if lease is None:
        raise NotFound(f"no lease {lease_id}", field="lease")
    return lease


def find_live_lease(session: Session, *, cluster: str, namespace: str) -> Lease | None:
    """Return the live lease holding a namespace on a cluster, if any."""
    statement = select(Lease).where(
        Lease.cluster == cluster,
        Lease.namespace == namespace,
        col(Lease.state).in_(LIVE_STATES),
    )
    return session.exec(statement).first()


def _namespace_taken(holder: Lease) -> NamespaceTaken:
    return NamespaceTaken(
        f"namespace {holder.namespace} on {holder.cluster} is already held by lease "
        f"{holder.id} of {holder.requester} ({holder.state}); pick another name or wait until "
        "that lease ends",
        field="namespace",
    )


def create_lease(
    session: Session,
    *,
    namespace: str,
    cluster: str,
    requester: str,
    team: str,
    tier: str,
    units: int,
    duration: timedelta,
    now: datetime,
    reason: str = "",
    requester_email: str | None = None,
    priority: int = 0,
    idempotency_key: str | None = None,
    fallback_tiers: list[str] | None = None,
) -> Lease:
    """Record a new request in state `requested`, or return the one with this idempotency key."""
    # A duplicate submission (Slack retries, double clicks) gets the first lease whatever its
    # other arguments say: the first submission is what the requester was shown.
    if idempotency_key is not None and (earlier := _by_key(session, idempotency_key)):
        return earlier
    if units <= 0:
        raise DomainError(f"ask for at least one unit, not {units}", field="units")
    if duration <= timedelta(0):
        raise DomainError(f"a lease must last a while, not {duration}", field="duration")
    if holder := find_live_lease(session, cluster=cluster, namespace=namespace):
        raise _namespace_taken(holder)
    ensure_team(session, name=team, now=now)
    lease = Lease(
        namespace=namespace,
        cluster=cluster,
        requester=requester,
        requester_email=requester_email,
        team=team,
        tier=tier,
        units=units,
        duration_seconds=int(duration.total_seconds()),
        reason=reason,
        priority=priority,
        state=LeaseState.REQUESTED,
        created_at=now,
        updated_at=now,
        idempotency_key=idempotency_key,
        fallback_tiers=fallback_tiers,
    )
    try:
        # A savepoint, so losing a race to a concurrent request leaves the caller's
        # transaction usable and the refusal can name the winner.
        with session.begin_nested():
            session.add(lease)
    except IntegrityError as exc:
        if idempotency_key is not None and (earlier := _by_key(session, idempotency_key)):
            return earlier
        if holder := find_live_lease(session, cluster=cluster, namespace=namespace):
            raise _namespace_taken(holder) from exc
        raise
    add_audit_event(
        session,
        lease=lease,
        actor=requester,
        action="lease.requested",
        now=now,
        from_state=None,
        reason=reason or None,
        data={"tier": tier, "units": units, "duration_seconds": lease.duration_seconds},
    )
    return lease


def _by_key(session: Session, key: str) -> Lease | None:
    return session.exec(select(Lease).where(Lease.idempotency_key == key)).first()


def add_audit_event(
    session: Session,
    *,
    lease: Lease,
    actor: str,
    action: str,
    now: datetime,
    from_state: LeaseState | None,
    reason: str | None,
    data: dict[str, Any] | None,
) -> AuditEvent:
    """Record the audit event of a change just made to a lease (its state is the to_state)."""
    event = AuditEvent(
        lease_id=lease.id,
        actor=actor,
        at=now,
        action=action,
        from_state=from_state,
        to_state=lease.state,
        reason=reason,
        data=data,
    )
    session.add(event)
    session.flush()
    return event


def record_event(
    session: Session,
    *,
    actor: str,
    action: str,
    now: datetime,
    lease_id: str | None = None,
    reason: str | None = None,
    data: dict[str, Any] | None = None,
) -> AuditEvent:
    """Record something that happened without a state change (capacity set, node drained)."""
    event = AuditEvent(
        lease_id=lease_id, actor=actor, at=now, action=action, reason=reason, data=data
    )
    session.add(event)
    session.flush()
    return event


def audit_trail(session: Session, *, lease_id: str) -> list[AuditEvent]:
    """Return a lease's audit events, oldest first."""
    statement = (
        select(AuditEvent).where(AuditEvent.lease_id == lease_id).order_by(col(AuditEvent.id))
    )
    return list(session.exec(statement).all())
