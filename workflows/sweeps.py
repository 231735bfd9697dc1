"""The minute sweep: approval timeouts, expiry warnings, expiry, scheduled reclaims, stuck steps.

Long delays live in the store as timestamps and are acted on here, never as Celery ETAs
(with Redis, ETA tasks past the visibility timeout are delivered again). Each part is a
plain function of (runtime, now) so tests drive it with an injected clock.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from sqlmodel import col, select

from config.durations import format_duration, format_moment
from leases.errors import InfrastructureError, TemporaryError
from leases.inventory import NodeReading, with_moves_under_way
from leases.lifecycle import claim_warning, expire_unapproved, transition
from leases.models import Lease, NodeMoveRecord
from leases.ports import Notice
from leases.states import LeaseState
from leases.store import session_scope
from workflows import outbox
from workflows.demand import PriceBook
from workflows.idle import idle_sweep
from workflows.runtime import Runtime
from workflows.steps.common import RUNNING, SYSTEM, enqueue
from workflows.steps.placing import (
    enforce_drain_timeout,
    lock_pools,
    moving_nodes,
    place_lease,
    read_inventory,
    rebalance_cluster,
    sync_pools,
)
from workflows.steps.reclaiming import start_reclaim
from workflows.views import lease_view

logger = logging.getLogger(__name__)

# Which task resumes a lease stuck in a state, for the reconciler.
RESUME = {
    LeaseState.APPROVED: "place",
    LeaseState.PLACING: "place",
    LeaseState.PROVISIONING: "provision",
    LeaseState.RECLAIMING: "reclaim",
}


@dataclass
class SweepReport:
    expired_unapproved: list[str] = field(default_factory=list)
    warned: list[tuple[str, int]] = field(default_factory=list)
    expired: list[str] = field(default_factory=list)
    scheduled: list[str] = field(default_factory=list)
    resumed: list[str] = field(default_factory=list)
    resumed_moves: list[int] = field(default_factory=list)
    wait_expired: list[str] = field(default_factory=list)
    idle_warned: list[str] = field(default_factory=list)
    idle_reclaimed: list[str] = field(default_factory=list)


def approval_timeouts(rt: Runtime, now: datetime, report: SweepReport) -> None:
    """Expire requests nobody decided within the policy's approval timeout."""
    timeout = rt.policy.approvals.timeout
    with session_scope(rt.engine) as session:
        for lease in expire_unapproved(session, now=now, timeout=timeout, actor=SYSTEM):
            view = lease_view(rt, lease)
            outbox.add(
                session,
                key=f"{lease.id}:card:expired",
                target="approval_update",
                lease_id=lease.id,
                now=now,
                notice=Notice(
                    kind="approval.expired",
                    text=f"Expired: no decision within {format_duration(timeout)}",
                    lease=view,
                    data={"outcome": "expired"},
                ),
            )
            outbox.add(
                session,
                key=f"{lease.id}:expired_unapproved",
                target="requester",
                lease_id=lease.id,
                now=now,
                notice=Notice(
                    kind="lease.expired_unapproved",
                    text=f"Nobody decided on {lease.namespace} within {format_duration(timeout)}; "
                    "the request expired. Ask again if you still need it.",
                    lease=view,
                ),
            )
            report.expired_unapproved.append(lease.id)


def expiry_warnings(rt: Runtime, now: datetime, report: SweepReport) -> None:
    """Warn each running lease once at every offset before its expiry, with an Extend button."""
    offsets = rt.policy.expiry.warnings
    if not offsets:
        return
    horizon = now + max(offsets)
    with session_scope(rt.engine) as session:
        leases = session.exec(
            select(Lease)
            .where(col(Lease.state).in_(RUNNING), Lease.expires_at <= horizon, Lease.expires_at > now)
            .with_for_update(skip_locked=True)
        ).all()
        for lease in leases:
            left = lease.expires_at - now
            # Only the tightest offset that has been reached: a lease first seen 30 minutes
            # before expiry gets the 1h warning, not the 24h one as well.
            due = [o for o in offsets if left <= o]
            if not due:
                continue
            offset = min(due)
            if not claim_warning(session, lease=lease, offset_seconds=int(offset.total_seconds()), now=now):
                continue
            for earlier in due:
                if earlier != offset:
                    claim_warning(session, lease=lease, offset_seconds=int(earlier.total_seconds()), now=now)
            if lease.state is LeaseState.ACTIVE:
                transition(
                    session,
                    lease=lease,
                    to=LeaseState.EXPIRING,
                    actor=SYSTEM,
                    reason=f"expires in {format_duration(left)}",
                    now=now,
                )
            outbox.add(
                session,
                key=f"{lease.id}:warn:{lease.extensions}:{int(offset.total_seconds())}",
                target="requester",
                lease_id=lease.id,
                now=now,
                notice=Notice(
                    kind="lease.expiry_warning",
                    text=f"{lease.namespace} expires in {format_duration(left)} "
                    f"(at {format_moment(lease.expires_at)}). Extend it if you still need it.",
                    lease=lease_view(rt, lease),
                    data={"offset": format_duration(offset)},
                    actions=("extend", "release"),
                ),
            )
            report.warned.append((lease.id, int(offset.total_seconds())))


def expiries(rt: Runtime, now: datetime, report: SweepReport) -> None:
    """Start reclaiming leases whose time is up or whose admin-scheduled reclaim is due."""
    with session_scope(rt.engine) as session:
        expired = session.exec(
            select(Lease.id).where(col(Lease.state).in_(RUNNING), Lease.expires_at <= now)
        ).all()
        scheduled = session.exec(
            select(Lease.id).where(
                col(Lease.state).in_(RUNNING), col(Lease.reclaim_at).is_not(None), Lease.reclaim_at <= now
            )
        ).all()
    # Each reason is checked again under the lease's lock: the requester may have extended it
    # (or an admin moved the reclaim) since the rows above were read.
    for lease_id in expired:
        state = start_reclaim(
            rt,
            lease_id=lease_id,
            actor=SYSTEM,
            reason="expired",
            still_due=lambda _, lease: lease.expires_at <= now,
        )
        if state == LeaseState.RECLAIMING:
            report.expired.append(lease_id)
    for lease_id in scheduled:
        if lease_id not in expired:
            state = start_reclaim(
                rt,
                lease_id=lease_id,
                actor=SYSTEM,
                reason="reclaim scheduled by an admin",
                still_due=lambda _, lease: lease.reclaim_at is not None and lease.reclaim_at <= now,
            )
            if state == LeaseState.RECLAIMING:
                report.scheduled.append(lease_id)


def stuck_steps(rt: Runtime, now: datetime, report: SweepReport) -> None:
    """Re-enqueue steps that have made no progress for too long (lost task, dead worker)."""
    cutoff = now - rt.stuck_after
    with session_scope(rt.engine) as session:
        rows = session.exec(
            select(Lease.id, Lease.state).where(
                col(Lease.state).in_(list(RESUME)),
                col(Lease.step_started_at).is_not(None),
                Lease.step_started_at <= cutoff,
            )
        ).all()
        for lease_id, _state in rows:
            lease = session.get(Lease, lease_id, with_for_update=True)
            lease.step_started_at = now  # not picked again by the next sweep while it runs
    for lease_id, state in rows:
        enqueue(rt, RESUME[LeaseState(state)], lease_id)
        report.resumed.append(lease_id)
        logger.warning(
            "lease.resumed lease=%s state=%s",
            lease_id,
            state,
            extra={"event": "lease.resumed", "lease_id": lease_id, "state": str(state)},
        )


def waitlist_timeouts(rt: Runtime, now: datetime, report: SweepReport) -> None:
    """Cancel leases still waitlisted `placement.max_wait` after their approval, and tell the
    requesters: nobody waits for capacity that has not come for that long."""
    limit = rt.policy.placement.max_wait
    if limit is None:
        return
    clusters = set()
    with session_scope(rt.engine) as session:
        ids = session.exec(
            select(Lease.id).where(
                Lease.state == LeaseState.WAITLISTED,
                col(Lease.decided_at).is_not(None),
                col(Lease.decided_at) < now - limit,
            )
        ).all()
        for lease_id in ids:
            lease = session.get(Lease, lease_id, with_for_update=True, populate_existing=True)
            if lease is None or lease.state is not LeaseState.WAITLISTED:
                continue  # placed or cancelled meanwhile
            why = f"no {lease.tier} capacity within {format_duration(limit)} of approval"
            transition(session, lease=lease, to=LeaseState.CANCELLED, actor=SYSTEM, reason=why, now=now)
            lease.fallback_tiers = None
            outbox.add(
                session,
                key=f"{lease.id}:wait_expired",
                target="requester",
                lease_id=lease.id,
                now=now,
                notice=Notice(
                    kind="lease.wait_expired",
                    text=f"{lease.namespace} was cancelled: {why}. Ask again later, or for another tier.",
                    lease=lease_view(rt, lease),
                ),
            )
            report.wait_expired.append(lease.id)
            clusters.add(lease.cluster)
    for cluster in sorted(clusters):
        enqueue(rt, "wake_waitlist", cluster)  # the waits they caused (drains, queue) are over


def stuck_moves(rt: Runtime, now: datetime, report: SweepReport) -> None:
    """Re-enqueue node moves whose task chain was lost (a dead worker, a broker that dropped
    the re-queued poll): a move still unfinished `stuck_after` after its last step, or, while
    the GPU Operator reconfigures (or puts the old configuration back), past the move timeout
    (the next step then ends it).
    A lost move would otherwise hold its node out of every pool, and a move slot, for good;
    a move whose chain is alive after all is only polled twice, as each step is idempotent."""
    with session_scope(rt.engine) as session:
        rows = session.exec(
            select(NodeMoveRecord.id, NodeMoveRecord.step, NodeMoveRecord.updated_at).where(
                col(NodeMoveRecord.finished_at).is_(None), NodeMoveRecord.updated_at <= now - rt.stuck_after
            )
        ).all()
    for move_id, step, updated_at in rows:
        if step in ("reconfiguring", "rolling_back") and now - updated_at <= rt.move_timeout:
            continue  # the operator may still be at work; the chain polls it
        enqueue(rt, "move_node", move_id)
        report.resumed_moves.append(move_id)
        logger.warning(
            "node_move.resumed move=%s step=%s",
            move_id,
            step,
            extra={"event": "node_move.resumed", "move": move_id, "step": step},
        )


def sync_capacity(rt: Runtime, cluster: str, *, readings: list[NodeReading] | None = None) -> None:
    """Write the cluster's pool capacity from its nodes (approval cards show free units from it);
    `readings`: the nodes as just read (None: read them here)."""
    if readings is None:
        readings = read_inventory(rt, cluster)
    with session_scope(rt.engine) as session:
        # Capacity needs no expiries, but the nodes of unfinished moves count for no pool.
        lock_pools(session, cluster)
        states = with_moves_under_way([r.state for r in readings], moving_nodes(session, cluster))
        sync_pools(session, rt, cluster=cluster, inventory=states)


class ClusterFailures:
    """The clusters a run over several clusters could not handle, so that one whose API cannot
    be reached (or that fails in any other way) costs the others nothing: each failure is
    logged, with the cluster and what to do about it, as it happens; the run carries on with
    the other clusters and calls `raise_if_any` at the end, so that its task is retried (a
    TemporaryError) or shown as failed."""

    def __init__(self, job: str, consequence: str) -> None:
        self.job = job
        self.consequence = consequence  # what the failed cluster missed, for the log
        self.errors: dict[str, Exception] = {}

    def __contains__(self, cluster: object) -> bool:
        return cluster in self.errors

    def add(self, cluster: str, exc: Exception) -> None:
        """Record (and log) that `cluster` failed with `exc`; its first failure is kept."""
        self.errors.setdefault(cluster, exc)
        if isinstance(exc, TemporaryError):
            advice = (
                "Check that its API server is reachable from gpulease and that gpulease's "
                "credentials for it (kubeconfig or service account token) are valid; the task's "
                "retry and the next run try it again."
            )
        elif isinstance(exc, InfrastructureError):
            advice = (
                "Its API server refused gpulease: check gpulease's RBAC permissions on it (the "
                "error names the request); the next run tries it again."
            )
        else:
            advice = (
                "Not an API error: see the traceback below (the store unreachable, or a bug in "
                "gpulease to report); the next run tries it again."
            )
        logger.error(
            "%s.cluster_failed cluster=%s error=%s: %s on cluster %s this time (the other clusters "
            "went ahead). %s",
            self.job,
            cluster,
            exc,
            self.consequence,
            cluster,
            advice,
            exc_info=not isinstance(exc, InfrastructureError),
            extra={"event": f"{self.job}.cluster_failed", "cluster": cluster, "error": str(exc)},
        )

    def raise_if_any(self) -> None:
        """Raise once every cluster was tried: a TemporaryError naming the failed clusters when
        any of them may come back (the task retries it), else the first error."""
        if not self.errors:
            return
        temporary = {c: e for c, e in self.errors.items() if isinstance(e, TemporaryError)}
        if not temporary:
            raise next(iter(self.errors.values()))
        delays = [e.delay for e in temporary.values() if e.delay is not None]
        listed = "; ".join(f"{c}: {e}" for c, e in self.errors.items())
        raise TemporaryError(
            f"{self.job} failed on {len(self.errors)} cluster(s), the others went ahead: {listed}",
            delay=max(delays) if delays else None,
        ) from next(iter(temporary.values()))


def wake_waitlist(rt: Runtime, cluster: str | None = None) -> list[str]:
    """Try to place waitlisted leases, highest priority first, then oldest first.

    Each cluster's nodes and pods are read once per wake-up, not once per waiting lease: the
    placements made meanwhile create no pods yet, the moves they plan are in the store, which
    placement reads afresh for every lease (leases.inventory.with_moves_under_way), and the
    drains they start are written into the readings as they are decided, before their tasks
    annotate the nodes (placing.show_drains). Demand is estimated once per cluster too, and
    prices every decision of the wake-up (demand.PriceBook).

    A cluster that fails (its API unreachable, say) is skipped, and logged: the others still
    get their placements, drain timeouts and rebalancing; the wake-up raises at the end, so
    its task is retried.
    """
    names = [cluster] if cluster else [c.name for c in rt.policy.clusters]
    failures = ClusterFailures(
        "waitlist",
        "no waitlisted lease was placed, no drain timed out and no idle node was rebalanced",
    )
    readings: dict[str, list[NodeReading]] = {}
    for name in names:
        try:
            readings[name] = read_inventory(rt, name)
            sync_capacity(rt, name, readings=readings[name])
            enforce_drain_timeout(rt, name, readings=readings[name])
        except Exception as exc:  # noqa: BLE001 - one cluster's failure is logged and raised at the end
            failures.add(name, exc)
    with session_scope(rt.engine) as session:
        query = select(Lease.id, Lease.cluster).where(Lease.state == LeaseState.WAITLISTED)
        if cluster:
            query = query.where(Lease.cluster == cluster)
        waiting = session.exec(
            query.order_by(col(Lease.priority).desc(), col(Lease.created_at), col(Lease.id))
        ).all()
    placed = []
    book = PriceBook()
    for lease_id, on in waiting:
        if on in failures:
            continue  # its cluster could not be read: the lease waits for the next wake-up
        try:
            state = place_lease(rt, lease_id, readings=readings.get(on), book=book)
        except Exception as exc:  # noqa: BLE001 - as above
            failures.add(on, exc)
            continue
        if state != str(LeaseState.WAITLISTED):
            placed.append(lease_id)
    # Then idle nodes go where demand is, before the next request has to wait for them.
    for name in names:
        if name in failures:
            continue
        try:
            rebalance_cluster(rt, name, readings=readings[name], book=book)
        except Exception as exc:  # noqa: BLE001 - as above
            failures.add(name, exc)
    failures.raise_if_any()
    return placed


def sweep(rt: Runtime, now: datetime | None = None) -> SweepReport:
    """Run every time-driven part once."""
    now = now or rt.now()
    report = SweepReport()
    approval_timeouts(rt, now, report)
    expiry_warnings(rt, now, report)
    expiries(rt, now, report)
    stuck_steps(rt, now, report)
    stuck_moves(rt, now, report)
    waitlist_timeouts(rt, now, report)
    idle = idle_sweep(rt, now)
    report.idle_warned, report.idle_reclaimed = idle.warned, idle.reclaimed
    enqueue(rt, "deliver")
    return report
