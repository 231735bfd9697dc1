"""The door to the workflows for the bot and the CLI: submit, decide, extend, release, admin.

Each call checks who may do it, writes to the store, and enqueues the slow work; none of them
talks to a cluster, so a Slack listener can call them right after its ack. Errors are
`leases.errors.DomainError`s with a user-readable message (and `RequestRefused` with one
error per field).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel import col, select

from config.durations import format_moment
from leases.errors import AlreadyDecided, DomainError, NotAuthorised, NotFound
from leases.lifecycle import outcome_message
from leases.models import ApprovalDecision, Lease
from leases.policy import FieldError
from leases.records import POLICY_APPROVER, find_live_lease, record_event
from leases.reservations import PoolUsage, pool_usage
from leases.states import LIVE_STATES, TERMINAL_STATES, UNDECIDED_STATES, Decision, LeaseState
from leases.store import session_scope
from workflows.runtime import current
from workflows.steps import extending, reclaiming, requests
from workflows.steps.common import RUNNING, enqueue, locked
from workflows.steps.requests import Decided, RequestRefused, SubmitRequest, Submitted
from workflows.views import lease_view


def now() -> datetime:
    """Return the workflows' notion of now: the installed runtime's clock (advanced in
    `gpulease dev`, injected in tests), which every time a user types is read against."""
    return current().now()

__all__ = [
    "Decided",
    "LeaseSummary",
    "RequestRefused",
    "SubmitRequest",
    "Submitted",
    "accept_fallback",
    "cancel",
    "capacity",
    "decide",
    "decide_extension",
    "deny_extension",
    "drain",
    "extend",
    "is_admin",
    "lease_by_namespace",
    "lease_details",
    "leases",
    "leases_of",
    "mark_busy",
    "now",
    "refusal",
    "release",
    "require_undecided",
    "revoke",
    "schedule_reclaim",
    "submit",
    "validate",
]


@dataclass(frozen=True)
class LeaseSummary:
    """What a person is shown about one lease."""

    id: str
    namespace: str
    cluster: str
    requester: str
    team: str
    tier: str
    units: int
    state: str
    expires_at: datetime | None
    time_left: timedelta | None
    fallback_tiers: tuple[str, ...]


# States in which a lease runs towards its expiry: only these have time left to show (one
# being reclaimed is ending now, whatever its expiry said).
_COUNTING_DOWN = frozenset({LeaseState.PROVISIONING, LeaseState.ACTIVE, LeaseState.EXPIRING})


def _summary(lease: Lease, now: datetime) -> LeaseSummary:
    left = lease.expires_at - now if lease.expires_at and lease.state in _COUNTING_DOWN else None
    return LeaseSummary(
        id=lease.id,
        namespace=lease.namespace,
        cluster=lease.cluster,
        requester=lease.requester,
        team=lease.team,
        tier=lease.tier,
        units=lease.units,
        state=str(lease.state),
        expires_at=lease.expires_at,
        time_left=left,
        fallback_tiers=tuple(lease.fallback_tiers or ()),
    )


def validate(req: SubmitRequest):
    """Check a request against the policy without recording it (for modal field errors)."""
    return requests.validate(current(), req)


def submit(req: SubmitRequest) -> Submitted:
    """Record a request; it is auto-approved or sent to the approvers."""
    return requests.submit(current(), req)


def decide(
    *,
    lease_id: str,
    approver: str,
    approver_groups: frozenset[str] = frozenset(),
    approve: bool,
    reason: str | None = None,
) -> Decided:
    """Approve or deny a request as `approver` (checked against the policy)."""
    return requests.decide(
        current(),
        lease_id=lease_id,
        approver=approver,
        approver_groups=approver_groups,
        approve=approve,
        reason=reason,
    )


def require_undecided(*, lease_id: str) -> None:
    """Raise AlreadyDecided unless the request still waits for an approver, in the words a
    second Approve gets: who decided it and when, or how it ended without a decision."""
    rt = current()
    with session_scope(rt.engine) as session:
        lease = session.get(Lease, lease_id)
        if lease is None:
            raise NotFound(f"no lease {lease_id}", field="lease")
        if lease.state in UNDECIDED_STATES:
            return
        earlier = session.exec(select(ApprovalDecision).where(ApprovalDecision.lease_id == lease_id)).first()
        if earlier is None:  # withdrawn, cancelled, expired or failed: nobody decided
            raise AlreadyDecided(outcome_message(session, lease))
        verb = "approved" if earlier.decision is Decision.APPROVE else "denied"
        by = "by policy" if earlier.approver == POLICY_APPROVER else f"by <@{earlier.approver}>"
        raise AlreadyDecided(f"This request was already {verb} {by} at {format_moment(earlier.decided_at)}.")


def cancel(*, lease_id: str, actor: str, actor_groups: frozenset[str] = frozenset()) -> str:
    """Withdraw a request that is not active yet."""
    return requests.cancel(current(), lease_id=lease_id, actor=actor, admin=is_admin(actor, actor_groups))


def lease_by_namespace(namespace: str, *, cluster: str | None = None) -> LeaseSummary:
    """Return the live lease holding a namespace, or raise NotFound."""
    rt = current()
    with session_scope(rt.engine) as session:
        lease = find_live_lease(session, cluster=rt.policy.cluster(cluster).name, namespace=namespace)
        if lease is None:
            raise NotFound(f"no live lease holds namespace {namespace}", field="namespace")
        return _summary(lease, rt.now())


def _live_id(namespace: str, cluster: str | None) -> str:
    return lease_by_namespace(namespace, cluster=cluster).id


def extend(
    *,
    namespace: str | None = None,
    lease_id: str | None = None,
    actor: str,
    by: timedelta,
    cluster: str | None = None,
    expected_extensions: int | None = None,
) -> extending.Extended:
    """Extend a running lease by `by`; past the policy's caps an approver is asked.

    A button passes `expected_extensions`, the count its message showed: a second click (or
    the same click delivered twice) then changes nothing."""
    lease_id = lease_id or _live_id(namespace or "", cluster)
    return extending.extend(
        current(), lease_id=lease_id, actor=actor, by=by, expected_extensions=expected_extensions
    )


def _extension_approver(lease_id: str, approver: str, approver_groups: frozenset[str]) -> str:
    """Check `approver` may decide the lease's extension; return the requester."""
    rt = current()
    with session_scope(rt.engine) as session:
        lease = locked(session, lease_id)
        tier, requester = lease.tier, lease.requester
    if not requests.may_approve(rt, tier=tier, user=approver, groups=approver_groups):
        raise NotAuthorised(f"<@{approver}> is not an approver for tier {tier}", field="approver")
    if approver == requester:
        raise NotAuthorised("you cannot decide your own extension", field="approver")
    return requester


def decide_extension(
    *, lease_id: str, approver: str, approver_groups: frozenset[str] = frozenset(), by: timedelta,
    expected_extensions: int | None = None, request_id: int | None = None,
) -> extending.Extended:
    """Grant an extension request past the self-service caps, as an approver (once per request).

    `request_id` is the request the card names; a card that names none answers the lease's
    open request of length `by`."""
    requester = _extension_approver(lease_id, approver, approver_groups)
    return extending.extend(current(), lease_id=lease_id, actor=requester, by=by, approved_by=approver,
                             expected_extensions=expected_extensions, request_id=request_id)


def deny_extension(
    *,
    lease_id: str,
    approver: str,
    approver_groups: frozenset[str] = frozenset(),
    by: timedelta,
    expected_extensions: int | None = None,
    request_id: int | None = None,
) -> None:
    """Refuse an extension request past the caps, as an approver: recorded, and the requester
    is told. The lease's other requests stay open (see `decide_extension`)."""
    _extension_approver(lease_id, approver, approver_groups)
    extending.deny_extension(
        current(), lease_id=lease_id, approver=approver, by=by, expected_extensions=expected_extensions,
        request_id=request_id,
    )


def release(
    *,
    namespace: str | None = None,
    lease_id: str | None = None,
    actor: str,
    actor_groups: frozenset[str] = frozenset(),
    cluster: str | None = None,
) -> str:
    """Give a lease back now (the requester, or an admin); return its state afterwards.

    A request that is not running yet (waiting for an approver, approved, being placed or
    waitlisted) is cancelled instead: it has nothing to reclaim."""
    lease_id = lease_id or _live_id(namespace or "", cluster)
    return _end(lease_id, actor=actor, admin=is_admin(actor, actor_groups), reason=f"released by {actor}")


# A lease in one of these has no namespace or units in use yet: ending it is cancelling it.
_NOT_RUNNING_YET = frozenset(
    {*UNDECIDED_STATES, LeaseState.APPROVED, LeaseState.PLACING, LeaseState.WAITLISTED}
)


def _end(
    lease_id: str, *, actor: str, admin: bool, reason: str, why: str | None = None, revoked: bool = False
) -> str:
    """Cancel a lease that is not running yet, or begin reclaiming it; return the new state.

    `why`: what an admin said (as typed), for the requester; `revoked`: the admin revoked it.
    The state is read without a lock and checked again by the path it picks, under the lease's
    lock: a request that started provisioning in between is reclaimed after all."""
    rt = current()
    with session_scope(rt.engine) as session:
        state = session.exec(select(Lease.state).where(Lease.id == lease_id)).first()
    if state in _NOT_RUNNING_YET:
        try:
            return requests.cancel(rt, lease_id=lease_id, actor=actor, admin=admin, reason=why)
        except DomainError:
            with session_scope(rt.engine) as session:
                state = session.exec(select(Lease.state).where(Lease.id == lease_id)).first()
            if state not in (LeaseState.PROVISIONING, *RUNNING, LeaseState.RECLAIMING,
                             LeaseState.RECLAIMED):
                raise  # not allowed, or ended meanwhile (the refusal says how)
    return reclaiming.start_reclaim(rt, lease_id=lease_id, actor=actor, reason=reason, admin=admin,
                                    revoked=revoked, revoked_because=why)


def accept_fallback(*, lease_id: str, tier: str, actor: str) -> str:
    """Take an offered fallback tier for a waitlisted lease; it is placed there if quota allows."""
    rt = current()
    with session_scope(rt.engine) as session:
        # The new tier's quota is checked against the team's usage: hold the team's row, as
        # submit does and before the lease's (the same order, so neither waits on the other),
        # so two leases of one team taking a fallback at once queue here instead of both
        # passing on the same numbers.
        team = session.exec(select(Lease.team).where(Lease.id == lease_id)).first()
        if team is not None:
            requests.lock_team(session, rt, team)
        lease = locked(session, lease_id)
        if actor != lease.requester:
            raise NotAuthorised("only the requester can choose another tier", field="actor")
        if lease.state is not LeaseState.WAITLISTED:
            raise DomainError(
                f"{lease.namespace} is {lease.state}: nothing is on offer for it any more", field="tier"
            )
        if tier not in (lease.fallback_tiers or []):
            raise DomainError(f"{tier} is not on offer for {lease.namespace} any more", field="tier")
        refused = requests.fallback_refusal(session, rt, lease, tier)
        if refused:
            raise RequestRefused(refused)
        record_event(
            session,
            actor=actor,
            action="lease.fallback_accepted",
            now=rt.now(),
            lease_id=lease.id,
            data={"from": lease.tier, "to": tier},
        )
        lease.asked_tier = lease.asked_tier or lease.tier
        lease.tier = tier
        lease.fallback_tiers = None
    enqueue(rt, "place", lease_id)
    return tier


def mark_busy(*, lease_id: str, actor: str) -> None:
    """Say a lease that looks idle is in use, so idle reclamation leaves it alone for a while."""
    rt = current()
    with session_scope(rt.engine) as session:
        lease = locked(session, lease_id)
        if actor != lease.requester:
            raise NotAuthorised("only the requester can mark this lease busy", field="actor")
        # Only a running lease is reclaimed as idle: for any other, "in use" would promise nothing.
        if lease.state is LeaseState.RECLAIMING or lease.state in TERMINAL_STATES:
            raise AlreadyDecided(f"{lease.namespace} is {lease.state} already", field="state")
        if lease.state not in RUNNING:
            raise DomainError(f"{lease.namespace} is {lease.state}; only a running lease can be marked in use",
                              field="state")
        record_event(session, actor=actor, action="lease.marked_busy", now=rt.now(), lease_id=lease.id)


def leases_of(user: str, *, live: bool = True) -> list[LeaseSummary]:
    """Return a user's leases, newest first."""
    rt = current()
    with session_scope(rt.engine) as session:
        query = select(Lease).where(Lease.requester == user)
        if live:
            query = query.where(col(Lease.state).in_(LIVE_STATES))
        rows = session.exec(query.order_by(col(Lease.created_at).desc())).all()
        now = rt.now()
        return [_summary(lease, now) for lease in rows]


def leases(*, live: bool = True, limit: int = 200) -> list[LeaseSummary]:
    """Return leases of everyone (for admins), newest first."""
    rt = current()
    with session_scope(rt.engine) as session:
        query = select(Lease)
        if live:
            query = query.where(col(Lease.state).in_(LIVE_STATES))
        rows = session.exec(query.order_by(col(Lease.created_at).desc()).limit(limit)).all()
        now = rt.now()
        return [_summary(lease, now) for lease in rows]


def lease_details(lease_id: str) -> dict:
    """Return the plain snapshot messages show for a lease."""
    rt = current()
    with session_scope(rt.engine) as session:
        lease = session.get(Lease, lease_id)
        if lease is None:
            raise NotFound(f"no lease {lease_id}", field="lease")
        return lease_view(rt, lease)


def is_admin(user: str, groups: frozenset[str] = frozenset()) -> bool:
    """Tell whether a Slack user is a platform admin."""
    admins = current().policy.admins
    return user in admins.users or bool(groups & set(admins.usergroups))


def _require_admin(user: str, groups: frozenset[str]) -> None:
    if not is_admin(user, groups):
        raise NotAuthorised("this is for gpulease admins only", field="actor")


def revoke(
    *,
    namespace: str,
    actor: str,
    actor_groups: frozenset[str] = frozenset(),
    reason: str = "",
    cluster: str | None = None,
) -> str:
    """Reclaim a lease now, as an admin; one not running yet is cancelled (see `release`)."""
    _require_admin(actor, actor_groups)
    lease_id = _live_id(namespace, cluster)
    return _end(
        lease_id,
        actor=actor,
        admin=True,
        reason=f"revoked by an admin{': ' + reason if reason else ''}",
        why=reason or None,
        revoked=True,
    )


def schedule_reclaim(
    *,
    namespace: str,
    at: datetime,
    actor: str,
    actor_groups: frozenset[str] = frozenset(),
    cluster: str | None = None,
) -> None:
    """Reclaim a lease at a given time, as an admin (acted on by the minute sweep)."""
    _require_admin(actor, actor_groups)
    rt = current()
    if at <= rt.now():
        raise DomainError("the reclaim time is in the past; use revoke to reclaim now", field="at")
    reclaiming.schedule_reclaim(rt, lease_id=_live_id(namespace, cluster), at=at, actor=actor)


def drain(
    *, node: str, actor: str, actor_groups: frozenset[str] = frozenset(), cluster: str | None = None
) -> None:
    """Cordon a node so it empties (admin), e.g. before maintenance or a move."""
    _require_admin(actor, actor_groups)
    rt = current()
    name = rt.policy.cluster(cluster).name
    enqueue(rt, "drain_node", name, node, "", actor)


def capacity(*, cluster: str | None = None) -> list[PoolUsage]:
    """Return capacity, reserved and free units per pool as last synced from the clusters."""
    rt = current()
    with session_scope(rt.engine) as session:
        return pool_usage(session, cluster=cluster)


def refusal(field: str, message: str) -> RequestRefused:
    """Build a one-field refusal (for parsers that reject input before the policy)."""
    return RequestRefused((FieldError(field, message),))
