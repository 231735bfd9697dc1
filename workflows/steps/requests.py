"""Requests and decisions: submit (policy, auto-approval or an approval card), decide, cancel."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlmodel import Session, select

from leases.errors import AlreadyDecided, DomainError, NamespaceTaken, NotAuthorised
from leases.lifecycle import decide as decide_lease
from leases.lifecycle import outcome_message, transition
from leases.models import ApprovalDecision, Lease, Team
from leases.policy import Evaluation, FieldError, Request, Usage, evaluate
from leases.ports import Notice
from leases.records import POLICY_APPROVER, create_lease, ensure_team
from leases.reservations import live_leases_of, live_namespaces, pool_usage, release, team_usage
from leases.states import TERMINAL_STATES, UNDECIDED_STATES, LeaseState
from leases.store import hold_lock, session_scope
from workflows import outbox
from workflows.runtime import Runtime
from workflows.steps.common import enqueue, locked, log, mark_step
from workflows.views import lease_view


class RequestRefused(DomainError):
    """The policy refused the request; `errors` names each field at fault."""

    def __init__(self, errors: tuple[FieldError, ...]) -> None:
        super().__init__("; ".join(f"{e.field}: {e.message}" for e in errors), field=errors[0].field)
        self.errors = errors


@dataclass(frozen=True)
class SubmitRequest:
    """A request as the bot (or CLI) hands it over."""

    requester: str
    team: str
    tier: str
    units: int
    namespace: str
    duration: timedelta | None = None
    reason: str = ""
    requester_email: str | None = None
    requester_groups: frozenset[str] = frozenset()
    idempotency_key: str | None = None
    cluster: str | None = None


@dataclass(frozen=True)
class Submitted:
    lease_id: str
    state: str
    approval: str  # "auto" or "required"
    rule: str | None
    duplicate: bool = False


def usage_for(session: Session, *, requester: str, team: str, cluster: str) -> Usage:
    """Read what the team and requester already hold, for the policy engine."""
    return Usage(
        team_units=team_usage(session, team=team),
        user_live_leases=len(live_leases_of(session, requester=requester)),
        live_namespaces=live_namespaces(session, cluster=cluster),
    )


def lock_team(session: Session, rt: Runtime, team: str) -> None:
    """Hold a policy team's row until the transaction ends (added when new), before its quota
    is checked: whoever checks the same team's quota next waits for this transaction's
    outcome. Take it before any lease row, so that two callers never wait on each other."""
    if any(t.name == team for t in rt.policy.teams):
        ensure_team(session, name=team, now=rt.now())
        session.get(Team, team, with_for_update=True, populate_existing=True)


def validate(rt: Runtime, req: SubmitRequest) -> Evaluation:
    """Evaluate a request against the policy and the store, writing nothing."""
    cluster = rt.policy.cluster(req.cluster).name
    with session_scope(rt.engine) as session:
        usage = usage_for(session, requester=req.requester, team=req.team, cluster=cluster)
    return evaluate(rt.policy, _policy_request(req), usage)


def _policy_request(req: SubmitRequest) -> Request:
    return Request(
        requester=req.requester,
        team=req.team,
        tier=req.tier,
        units=req.units,
        namespace=req.namespace,
        duration=req.duration,
        requester_groups=req.requester_groups,
    )


def submit(rt: Runtime, req: SubmitRequest) -> Submitted:
    """Record a request the policy allows; auto-approve it or ask the approvers."""
    now = rt.now()
    cluster = rt.policy.cluster(req.cluster).name
    with session_scope(rt.engine) as session:
        # Limits read the requester's leases in every team, quotas the team's usage: holding
        # both makes two requests of one requester, or of one team, queue here instead of both
        # passing on the same numbers. The requester's lock is always taken first, holding
        # nothing else, so two submissions can never each wait for the other.
        hold_lock(session, name=f"requester:{req.requester}")
        lock_team(session, rt, req.team)
        # Looked up under the locks: a second delivery of the same request that waited here
        # for the first finds it recorded, instead of its namespace taken.
        if req.idempotency_key:
            earlier = session.exec(select(Lease).where(Lease.idempotency_key == req.idempotency_key)).first()
            if earlier is not None:
                return Submitted(earlier.id, str(earlier.state), "unknown", None, duplicate=True)
        verdict = evaluate(
            rt.policy,
            _policy_request(req),
            usage_for(session, requester=req.requester, team=req.team, cluster=cluster),
        )
        if not verdict.allowed:
            raise RequestRefused(verdict.errors)
        tier = rt.policy.tier(req.tier)
        try:
            lease = create_lease(
                session,
                namespace=req.namespace,
                cluster=cluster,
                requester=req.requester,
                requester_email=req.requester_email,
                team=req.team,
                tier=req.tier,
                units=req.units,
                duration=verdict.duration,
                reason=req.reason,
                priority=tier.priority,
                idempotency_key=req.idempotency_key,
                fallback_tiers=None,  # nothing on offer until placement finds the tier full
                now=now,
            )
        except NamespaceTaken as exc:
            raise RequestRefused((FieldError("namespace", exc.message),)) from None
        view = lease_view(rt, lease)
        if verdict.approval == "auto":
            decide_lease(
                session,
                lease=lease,
                approver=POLICY_APPROVER,
                approve=True,
                reason=None,
                now=now,
                rule=verdict.rule,
            )
            mark_step(lease, "place", now)
            outbox.add(
                session,
                key=f"{lease.id}:approved",
                target="requester",
                lease_id=lease.id,
                now=now,
                notice=Notice(
                    kind="lease.approved",
                    text=f"Your request for {lease.namespace} ({lease.units}× {lease.tier}) was approved "
                    f"automatically (rule {verdict.rule}). Placing it now.",
                    lease=view,
                    data={"rule": verdict.rule},
                ),
            )
        else:
            transition(
                session,
                lease=lease,
                to=LeaseState.PENDING_APPROVAL,
                actor=req.requester,
                reason=None,
                now=now,
            )
            view = lease_view(rt, lease)
            outbox.add(
                session,
                key=f"{lease.id}:received",
                target="requester",
                lease_id=lease.id,
                now=now,
                notice=Notice(
                    kind="lease.pending_approval",
                    text=f"Your request for {lease.namespace} ({lease.units}× {lease.tier} for "
                    f"{view['duration']}) is waiting for an approver.",
                    lease=view,
                    actions=("cancel",),
                ),
            )
            outbox.add(
                session,
                key=f"{lease.id}:card",
                target="approval_card",
                lease_id=lease.id,
                now=now,
                notice=Notice(
                    kind="approval.requested",
                    text=f"<@{lease.requester}> asks for {lease.units}× {lease.tier} as {lease.namespace} "
                    f"for {view['duration']}: {lease.reason or 'no reason given'}",
                    lease=view,
                    data=approval_context(rt, session, lease),
                    actions=("approve", "deny"),
                ),
            )
        log("lease.submitted", lease, approval=verdict.approval, rule=verdict.rule)
        result = Submitted(lease.id, str(lease.state), verdict.approval, verdict.rule)
    if result.approval == "auto":
        enqueue(rt, "place", result.lease_id)
    enqueue(rt, "deliver")
    return result


def approval_context(rt: Runtime, session: Session, lease: Lease) -> dict:
    """Return what an approver sees besides the request: team quota use and free units."""
    used = team_usage(session, team=lease.team)
    team = next((t for t in rt.policy.teams if t.name == lease.team), None)
    quota = team.quota.tiers.get(lease.tier) if team else None
    pools = {p.tier: p for p in pool_usage(session, cluster=lease.cluster)}
    pool = pools.get(lease.tier)
    return {
        "channel": rt.policy.approvals.channel,
        "team_used": used.get(lease.tier, 0),
        "team_quota": quota,
        "pool_free": pool.free if pool else None,
        "pool_capacity": pool.capacity if pool else None,
    }


def may_approve(rt: Runtime, *, tier: str, user: str, groups: frozenset[str]) -> bool:
    """Tell whether a Slack user (with their user groups) may decide requests for a tier."""
    approvers = rt.policy.approvers_for(tier)
    return user in approvers.users or bool(groups & set(approvers.usergroups))


@dataclass(frozen=True)
class Decided:
    lease_id: str
    state: str
    namespace: str
    requester: str


def decide(
    rt: Runtime,
    *,
    lease_id: str,
    approver: str,
    approver_groups: frozenset[str],
    approve: bool,
    reason: str | None,
) -> Decided:
    """Approve or deny a request on behalf of an approver, checking they may."""
    now = rt.now()
    with session_scope(rt.engine) as session:
        lease = locked(session, lease_id)
        if not may_approve(rt, tier=lease.tier, user=approver, groups=approver_groups):
            raise NotAuthorised(f"<@{approver}> is not an approver for tier {lease.tier}", field="approver")
        decide_lease(session, lease=lease, approver=approver, approve=approve, reason=reason, now=now)
        view = lease_view(rt, lease)
        outcome = "approved" if approve else "denied"
        outbox.add(
            session,
            key=f"{lease.id}:card:{outcome}",
            target="approval_update",
            lease_id=lease.id,
            now=now,
            notice=Notice(
                kind=f"approval.{outcome}",
                text=f"{outcome.capitalize()} by <@{approver}>" + (f": {reason}" if reason else ""),
                lease=view,
                data={"decided_by": approver, "reason": reason, "outcome": outcome},
            ),
        )
        outbox.add(
            session,
            key=f"{lease.id}:{outcome}",
            target="requester",
            lease_id=lease.id,
            now=now,
            notice=Notice(
                kind=f"lease.{outcome}",
                text=(
                    f"<@{approver}> approved {lease.namespace}. Placing it now."
                    if approve
                    else f"<@{approver}> denied {lease.namespace}: {reason}"
                ),
                lease=view,
                data={"decided_by": approver, "reason": reason},
            ),
        )
        if approve:
            mark_step(lease, "place", now)
        log("lease.decided", lease, outcome=outcome, approver=approver)
        result = Decided(lease.id, str(lease.state), lease.namespace, lease.requester)
    if approve:
        enqueue(rt, "place", lease_id)
    enqueue(rt, "deliver")
    return result


def cancel(rt: Runtime, *, lease_id: str, actor: str, admin: bool = False, reason: str | None = None) -> str:
    """Withdraw a request that is not active yet (the requester), or cancel it (an admin, who
    may say why in `reason`); return the new state. The approval card, when the request is
    still waiting for a decision, and the requester are told who did it."""
    now = rt.now()
    reason = (reason or "").strip() or None
    with session_scope(rt.engine) as session:
        lease = locked(session, lease_id)
        if actor != lease.requester and not admin:
            raise NotAuthorised("only the requester or an admin can cancel this request", field="actor")
        if lease.state in TERMINAL_STATES:
            raise AlreadyDecided(outcome_message(session, lease))
        if lease.state not in UNDECIDED_STATES | {
            LeaseState.APPROVED,
            LeaseState.WAITLISTED,
            LeaseState.PLACING,
        }:
            raise DomainError(
                f"{lease.namespace} is {lease.state}; release it instead of cancelling", field="lease"
            )
        release(session, lease=lease, now=now)
        was_pending = lease.state in UNDECIDED_STATES
        transition(session, lease=lease, to=LeaseState.CANCELLED, actor=actor, reason=reason or "cancelled", now=now)
        mark_step(lease, None, now)
        view = lease_view(rt, lease)
        by_requester = actor == lease.requester
        why = f": {reason}" if reason else ""
        if was_pending:
            outbox.add(
                session,
                key=f"{lease.id}:card:cancelled",
                target="approval_update",
                lease_id=lease.id,
                now=now,
                notice=Notice(
                    kind="approval.cancelled",
                    text=(f"Withdrawn by <@{actor}>" if by_requester else f"Cancelled by <@{actor}>{why}"),
                    lease=view,
                    data={"decided_by": actor, "outcome": "cancelled", "reason": reason},
                ),
            )
        outbox.add(
            session,
            key=f"{lease.id}:cancelled",
            target="requester",
            lease_id=lease.id,
            now=now,
            notice=Notice(
                kind="lease.cancelled",
                text=(
                    f"{lease.namespace} was cancelled."
                    if by_requester
                    else f"{lease.namespace} was cancelled by <@{actor}> before it started{why}."
                ),
                lease=view,
                data={"cancelled_by": actor, "reason": reason},
            ),
        )
        state, cluster = str(lease.state), lease.cluster
    enqueue(rt, "deliver")
    enqueue(rt, "wake_waitlist", cluster)
    return state


__all__ = [
    "Decided",
    "RequestRefused",
    "SubmitRequest",
    "Submitted",
    "approval_context",
    "cancel",
    "decide",
    "lock_team",
    "may_approve",
    "submit",
    "usage_for",
    "validate",
]


def fallback_refusal(session: Session, rt: Runtime, lease: Lease, tier: str) -> tuple[FieldError, ...]:
    """Say why the lease's requester may not take `tier` in place of theirs (nothing: they
    may): the new tier's quota and limits, as for a new request, and its approval. Whoever
    approved the request must be one of the new tier's approvers, unless the policy approves
    such a request by itself: a fallback never skips an approval its tier requires."""
    usage = usage_for(session, requester=lease.requester, team=lease.team, cluster=lease.cluster)
    held = dict(usage.team_units)
    held[lease.tier] = max(0, held.get(lease.tier, 0) - lease.units)  # this lease moves tier
    usage = type(usage)(
        team_units=held,
        user_live_leases=usage.user_live_leases - 1,
        live_namespaces=usage.live_namespaces - {lease.namespace},
    )
    verdict = evaluate(
        rt.policy,
        Request(
            requester=lease.requester,
            team=lease.team,
            tier=tier,
            units=lease.units,
            namespace=lease.namespace,
            duration=timedelta(seconds=lease.duration_seconds),
        ),
        usage,
    )
    if not verdict.allowed:
        return tuple(verdict.errors)
    if verdict.approval == "auto":
        return ()
    approved_by = session.exec(
        select(ApprovalDecision.approver).where(ApprovalDecision.lease_id == lease.id)
    ).first()
    approvers = rt.policy.approvers_for(tier)
    if approvers == rt.policy.approvers_for(lease.tier) and approved_by != POLICY_APPROVER:
        return ()
    if approved_by is not None and approved_by in approvers.users:
        return ()
    return (
        FieldError(
            "tier",
            f"{tier} needs the approval of its own approvers, which {lease.tier}'s did not give; "
            f"ask for {tier} in a new request",
        ),
    )
