"""Placing: decide where an approved lease goes and reserve its units, or make it wait.

Reads the cluster's nodes (outside any transaction), then, holding the cluster's pool rows so
placements on one cluster are decided one at a time, syncs pool capacity from the inventory,
learns when each node empties (the expiry of the leases with GPU pods on it) and what each
pool is worth (workflows.demand), asks the pure placement function, and acts on its decision:
reserve now, start node moves, waitlist (possibly draining a node), offer fallback tiers, or
refuse.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlmodel import Session, col, func, select

from config.durations import format_duration, format_moment
from leases.capacity import NodeState, pool_units
from leases.errors import CapacityExceeded
from leases.inventory import NodeReading, with_drains, with_empty_times, with_moves_under_way
from leases.lifecycle import transition
from leases.models import Lease, NodeMoveRecord, Pool, Reservation
from leases.moves import NodeMove, Prices, overdue_drains, stale_drains
from leases.placement import (
    OfferFallback,
    PlaceAfterMove,
    PlacementRequest,
    PlaceNow,
    Refuse,
    Waitlist,
    place,
)
from leases.ports import Notice
from leases.rebalance import rebalance, rebalance_drains
from leases.reservations import reserve, set_pool_capacity
from leases.states import LeaseState
from leases.store import session_scope
from provisioners.inventory import read_cluster
from workflows import outbox
from workflows.demand import PriceBook
from workflows.runtime import Runtime
from workflows.steps.common import SYSTEM, enqueue, fail_lease, locked, log, mark_step
from workflows.steps.requests import fallback_refusal
from workflows.views import lease_view

logger = logging.getLogger(__name__)

PLACEABLE = (LeaseState.APPROVED, LeaseState.WAITLISTED, LeaseState.PLACING)
# Leases whose pods may be on nodes: anything provisioned and not yet gone.
LIVE_ON_NODES = (
    LeaseState.PROVISIONING,
    LeaseState.ACTIVE,
    LeaseState.EXPIRING,
    LeaseState.RECLAIMING,
)


def read_inventory(rt: Runtime, cluster: str) -> list[NodeReading]:
    """Read the cluster's nodes into the capacity model (with the namespaces of their GPU pods)."""
    return read_cluster(rt.kube(cluster), retry=rt.retry)


def with_expiries(session: Session, cluster: str, readings: list[NodeReading]) -> list[NodeState]:
    """Return the nodes' states as placement must see them: when each empties (from the expiry
    of the live leases), and the nodes of unfinished moves cordoned for their target tier."""
    rows = session.exec(
        select(Lease.namespace, Lease.expires_at).where(
            Lease.cluster == cluster, col(Lease.state).in_(LIVE_ON_NODES), col(Lease.expires_at).is_not(None)
        )
    ).all()
    states = with_empty_times(readings, {ns: at.timestamp() for ns, at in rows if at is not None})
    return with_moves_under_way(states, moving_nodes(session, cluster))


def moving_nodes(session: Session, cluster: str) -> dict[str, str]:
    """Return the nodes of the cluster's unfinished moves, each with the tier it moves to."""
    rows = session.exec(
        select(NodeMoveRecord.node, NodeMoveRecord.to_tier).where(
            NodeMoveRecord.cluster == cluster, col(NodeMoveRecord.finished_at).is_(None)
        )
    ).all()
    return dict(rows)


def sync_pools(session: Session, rt: Runtime, *, cluster: str, inventory: list[NodeState]) -> dict[str, int]:
    """Write each tier's capacity on the cluster from the inventory; return it.

    The store holds what leases can run on: draining nodes count, as their pool's leases keep
    running there and a lease that ends before they empty may be placed on them. Which leases
    may use them is placement's call (leases.moves.Pools.room_until); the store only makes
    sure that reservations never exceed the units that exist.
    """
    counted, draining = pool_units(inventory=inventory, tiers=rt.tiers)
    capacity = {tier: units + draining[tier] for tier, units in counted.items()}
    now = rt.now()
    for tier, units in capacity.items():
        # force: a node that failed or left shrinks its pool even below what is reserved;
        # existing leases keep their reservations, new ones are refused until it recovers.
        set_pool_capacity(
            session,
            cluster=cluster,
            tier=tier,
            units=units,
            now=now,
            actor=SYSTEM,
            force=True,
            draining=draining[tier],
        )
    return capacity


def lock_pools(session: Session, cluster: str) -> None:
    """Hold the cluster's pool rows until the transaction ends: one placement (or capacity
    sync) per cluster at a time, so two deciders never pick the same idle node. Taken before
    the store's moves are read: a move another decider records meanwhile is then read after
    it committed, and its node is never counted in the pool it leaves. Always in id order, so
    two lockers never deadlock."""
    session.exec(select(Pool).where(Pool.cluster == cluster).order_by(Pool.id).with_for_update()).all()


def _held(session: Session, cluster: str) -> list[tuple[str, str, int]]:
    rows = session.exec(
        select(Reservation).where(Reservation.cluster == cluster, col(Reservation.released_at).is_(None))
    ).all()
    return [(r.lease_id, r.tier, r.units) for r in rows]


def _waiting(session: Session, cluster: str, *, besides: str) -> dict[str, int]:
    rows = session.exec(
        select(Lease.tier, func.sum(Lease.units))
        .where(Lease.cluster == cluster, Lease.state == LeaseState.WAITLISTED, Lease.id != besides)
        .group_by(Lease.tier)
    ).all()
    return {tier: int(units) for tier, units in rows}


def paused_tiers(session: Session, rt: Runtime, cluster: str) -> frozenset[str]:
    """Return the tiers no node of the cluster may move or drain toward now: a reconfiguration
    to them was rolled back within `placement.failed_move_pause` (a config the GPU Operator
    cannot apply would otherwise be tried again at every wake-up, node after node)."""
    pause = rt.policy.placement.failed_move_pause
    if not pause:
        return frozenset()
    rows = session.exec(
        select(NodeMoveRecord.to_tier).where(
            NodeMoveRecord.cluster == cluster,
            NodeMoveRecord.step == "rolled_back",
            col(NodeMoveRecord.finished_at) >= rt.now() - pause,
        )
    ).all()
    return frozenset(rows)


def wait_until(rt: Runtime, lease: Lease) -> float | None:
    """Return when the lease leaves the waitlist unplaced (POSIX seconds): `placement.max_wait`
    after its approval; None when waits are not limited."""
    limit = rt.policy.placement.max_wait
    if limit is None or lease.decided_at is None:
        return None
    return (lease.decided_at + limit).timestamp()


def prices_for(lease: Lease, prices: Prices | None, *, now: datetime, patience: timedelta) -> Prices | None:
    """Return the prices that hold for this lease: none once it has waited `patience` since
    approval, so that prices can delay a request but never keep it waiting for ever."""
    since = lease.decided_at or lease.created_at
    return prices if prices is not None and now - since < patience else None


def drain_deadline(rt: Runtime, now: datetime) -> float:
    """Return when a drain begun now is given up (POSIX seconds): nodes not known to empty by
    then are not drained."""
    return (now + rt.policy.placement.drain_timeout).timestamp()


def enforce_drain_timeout(rt: Runtime, cluster: str, *, readings: list[NodeReading]) -> list[str]:
    """Give back to their pools the draining nodes still running GPU pods `drain_timeout` after
    their drain began, and return them; stamp a start on a drain that has none (one begun
    before drains were stamped, or whose stamp is unreadable), so that it is bounded too.
    `readings` (the cluster's nodes as just read) show what was given back."""
    timeout = rt.policy.placement.drain_timeout
    states = [r.state for r in readings]
    overdue = overdue_drains(states, now=rt.now().timestamp(), timeout_s=timeout.total_seconds())
    follow_up: list[tuple[str, tuple]] = []
    for state in states:
        if state.name in overdue:
            why = f"still running GPU pods {format_duration(timeout)} after its drain for {state.target_tier} began"
            _log_rebalance("node.drain_overdue", cluster, state.name, state.tier, state.target_tier or "")
            follow_up.append(("undrain_node", (cluster, state.name, why)))
        elif state.schedulable and state.target_tier and state.gpu_pods and state.drain_started is None:
            follow_up.append(("drain_node", (cluster, state.name, state.target_tier)))
    for task, args in follow_up:
        enqueue(rt, task, *args)
    show_drains(readings, follow_up)
    return overdue


def moves_in_flight(session: Session, cluster: str) -> int:
    """Count node moves on the cluster that have not finished."""
    return session.exec(
        select(func.count())
        .select_from(NodeMoveRecord)
        .where(NodeMoveRecord.cluster == cluster, col(NodeMoveRecord.finished_at).is_(None))
    ).one()


def place_lease(
    rt: Runtime,
    lease_id: str,
    *,
    readings: list[NodeReading] | None = None,
    book: PriceBook | None = None,
) -> str:
    """Place one approved or waitlisted lease; return its state afterwards.

    `readings`: the cluster's nodes as just read by the caller (a waitlist wake-up reads them
    once for every lease it tries), updated here with the drains this placement starts; None
    reads them here. `book`: the caller's prices, shared by the leases it places (None:
    estimated here).

    A waitlisted lease stays waitlisted while it is decided, and when it has to wait again
    nothing about it is written but what changed (its fallback offer, a drain for it): the
    wake-up tries every waiting lease each minute, and its state and audit trail change only
    when it leaves the waitlist (waitlisted → placing → ...), as they would for a new one.
    """
    now = rt.now()
    with session_scope(rt.engine) as session:
        lease = locked(session, lease_id)
        if lease.state not in PLACEABLE:
            return str(lease.state)  # placed, cancelled or failed already
        cluster = lease.cluster
        if lease.state is not LeaseState.WAITLISTED:
            if lease.state is not LeaseState.PLACING:
                transition(session, lease=lease, to=LeaseState.PLACING, actor=SYSTEM, reason=None, now=now)
            mark_step(lease, "place", now)
    if readings is None:
        readings = read_inventory(rt, cluster)
    follow_up: list[tuple[str, tuple]] = []
    with session_scope(rt.engine) as session:
        lease = locked(session, lease_id)
        if lease.state not in (LeaseState.PLACING, LeaseState.WAITLISTED):
            return str(lease.state)
        lock_pools(session, cluster)
        inventory = with_expiries(session, cluster, readings)
        sync_pools(session, rt, cluster=cluster, inventory=inventory)
        prices = (book or PriceBook()).prices(session, rt, cluster=cluster, inventory=inventory)
        request = PlacementRequest(
            tier=lease.tier,
            units=lease.units,
            # A lease that ends before a draining node empties may use that node's room.
            ends_at=now.timestamp() + lease.duration_seconds,
            # No node is drained for it that would empty only after it stops waiting.
            wait_until=wait_until(rt, lease),
        )
        decision = place(
            inventory=inventory,
            reservations=_held(session, cluster),
            request=request,
            tiers=rt.tiers,
            in_flight=moves_in_flight(session, cluster),
            max_in_flight=rt.policy.cluster(cluster).max_moves_in_flight,
            waiting=_waiting(session, cluster, besides=lease.id),
            prices=prices_for(lease, prices, now=now, patience=rt.policy.placement.priced_wait),
            drain_deadline=drain_deadline(rt, now),
            paused=paused_tiers(session, rt, cluster),
        )
        log("lease.placement", lease, decision=type(decision).__name__, reason=decision.reason)
        if isinstance(decision, Refuse) and not decision.lasting and lease.state is LeaseState.WAITLISTED:
            # It fitted when it was approved: nodes have left (or not come back yet) since.
            decision = Waitlist(decision.reason)
        if lease.state is LeaseState.WAITLISTED and not isinstance(decision, Waitlist | OfferFallback):
            transition(session, lease=lease, to=LeaseState.PLACING, actor=SYSTEM, reason=None, now=now)
            mark_step(lease, "place", now)
        for node in stale_drains(
            inventory=inventory,
            reservations=_held(session, cluster),
            tiers=rt.tiers,
            waiting=_waiting(session, cluster, besides=""),
            prices=prices,
        ):
            follow_up.append(("undrain_node", (cluster, node)))
        if isinstance(decision, PlaceNow):
            state = _place_now(session, rt, lease, decision, follow_up)
        elif isinstance(decision, PlaceAfterMove):
            state = _after_move(session, rt, lease, decision, follow_up)
        elif isinstance(decision, Refuse):
            fail_lease(
                rt,
                session,
                lease,
                reason=decision.reason,
                text=f"{lease.namespace} cannot be placed: {decision.reason}",
            )
            state = str(lease.state)
        else:
            state = _wait(session, rt, lease, decision, follow_up)
    for task, args in follow_up:
        enqueue(rt, task, *args)
    enqueue(rt, "deliver")
    show_drains(readings, follow_up)
    return state


def show_drains(readings: list[NodeReading], follow_up: Sequence[tuple[str, tuple]]) -> None:
    """Show in `readings`, in place, the drains (and undrains) just enqueued, so that a caller
    deciding again on the same readings counts those nodes where the tasks will leave them."""
    targets = {args[1]: args[2] for task, args in follow_up if task == "drain_node"}
    targets |= {args[1]: None for task, args in follow_up if task == "undrain_node"}
    if targets:
        readings[:] = with_drains(readings, targets)


def _place_now(session: Session, rt: Runtime, lease: Lease, decision: PlaceNow, follow_up: list) -> str:
    now = rt.now()
    if decision.tier != lease.tier:
        lease.tier = decision.tier  # a tier the requester accepted in place of theirs
    try:
        reserve(session, lease=lease, now=now)
    except CapacityExceeded as exc:
        return _wait(session, rt, lease, Waitlist(exc.message), follow_up)
    transition(
        session, lease=lease, to=LeaseState.PROVISIONING, actor=SYSTEM, reason=decision.reason, now=now
    )
    if lease.expires_at is None:
        lease.expires_at = now + timedelta(seconds=lease.duration_seconds)
    mark_step(lease, "provision", now)
    follow_up.append(("provision", (lease.id,)))
    return str(lease.state)


def _after_move(
    session: Session, rt: Runtime, lease: Lease, decision: PlaceAfterMove, follow_up: list
) -> str:
    start_moves(
        session,
        cluster=lease.cluster,
        moves=decision.plan.moves,
        lease_id=lease.id,
        now=rt.now(),
        follow_up=follow_up,
    )
    return _wait(session, rt, lease, Waitlist(decision.reason), follow_up, moving=True)


def start_moves(
    session: Session,
    *,
    cluster: str,
    moves: Sequence[NodeMove],
    lease_id: str | None,
    now: datetime,
    follow_up: list,
) -> None:
    """Record each move (for `lease_id`, or None: ahead of demand) and queue its execution."""
    for move in moves:
        record = NodeMoveRecord(
            cluster=cluster,
            node=move.node,
            from_tier=move.from_tier,
            to_tier=move.to_tier,
            node_config=move.node_config,
            plugin_config=move.plugin_config,
            lease_id=lease_id,
            started_at=now,
            updated_at=now,
        )
        session.add(record)
        session.flush()
        follow_up.append(("move_node", (record.id,)))


def rebalance_cluster(
    rt: Runtime,
    cluster: str,
    *,
    readings: list[NodeReading] | None = None,
    book: PriceBook | None = None,
) -> list[str]:
    """Move idle nodes of the cluster to the tiers where demand makes them worth more, and drain
    busy ones for them; return the nodes set moving or draining. Nothing changes while pricing
    or rebalancing is off, or still learning. `readings`: the cluster's nodes as just read by
    the caller (None: read them here); `book`: the caller's prices (None: estimated here)."""
    settings = rt.policy.placement
    if not (settings.pricing and settings.rebalance):
        return []
    if readings is None:
        readings = read_inventory(rt, cluster)
    follow_up: list[tuple[str, tuple]] = []
    with session_scope(rt.engine) as session:
        lock_pools(session, cluster)
        inventory = with_expiries(session, cluster, readings)
        prices = (book or PriceBook()).prices(session, rt, cluster=cluster, inventory=inventory)
        if prices is None:
            return []
        held, waiting = _held(session, cluster), _waiting(session, cluster, besides="")
        limit = rt.policy.cluster(cluster).max_moves_in_flight
        paused = paused_tiers(session, rt, cluster)
        moves = rebalance(
            inventory=inventory,
            reservations=held,
            tiers=rt.tiers,
            waiting=waiting,
            prices=prices,
            in_flight=moves_in_flight(session, cluster),
            max_in_flight=limit,
            paused=paused,
        )
        for move in moves:
            _log_rebalance("node.rebalance", cluster, move.node, move.from_tier, move.to_tier)
        start_moves(session, cluster=cluster, moves=moves, lease_id=None, now=rt.now(), follow_up=follow_up)
        # Busy nodes are drained with the moves just planned counted where they go; as many
        # busy nodes may drain at once as nodes may move.
        drains = rebalance_drains(
            inventory=with_moves_under_way(inventory, {m.node: m.to_tier for m in moves}),
            reservations=held,
            tiers=rt.tiers,
            waiting=waiting,
            prices=prices,
            max_draining=limit,
            deadline=drain_deadline(rt, rt.now()),
            paused=paused,
        )
        for drain in drains:
            _log_rebalance("node.rebalance_drain", cluster, drain.node, drain.from_tier, drain.to_tier)
            follow_up.append(("drain_node", (cluster, drain.node, drain.to_tier)))
    for task, args in follow_up:
        enqueue(rt, task, *args)
    show_drains(readings, follow_up)
    return [move.node for move in moves] + [drain.node for drain in drains]


def _log_rebalance(event: str, cluster: str, node: str, from_tier: str | None, to_tier: str) -> None:
    logger.info(
        "%s cluster=%s node=%s from=%s to=%s",
        event,
        cluster,
        node,
        from_tier,
        to_tier,
        extra={"event": event, "cluster": cluster, "node": node, "from_tier": from_tier, "to_tier": to_tier},
    )


def _wait(
    session: Session,
    rt: Runtime,
    lease: Lease,
    decision: Waitlist | OfferFallback,
    follow_up: list,
    *,
    moving: bool = False,
) -> str:
    now = rt.now()
    if isinstance(decision, OfferFallback):
        # Only what the requester may take: the quota and approval of each fallback tier.
        takable = tuple(t for t in decision.tiers if not fallback_refusal(session, rt, lease, t))
        if takable != decision.tiers:
            decision = OfferFallback(takable, decision.reason, decision.drain) if takable else Waitlist(
                decision.reason, decision.drain
            )
    again = lease.state is LeaseState.WAITLISTED
    if not again:  # one that waits again has nothing new to record
        transition(session, lease=lease, to=LeaseState.WAITLISTED, actor=SYSTEM, reason=decision.reason, now=now)
    mark_step(lease, None, now)
    # What is on offer is what this decision offers (the tier's fallbacks with room now): an
    # offer no longer backed by room cannot be accepted any more.
    lease.fallback_tiers = list(decision.tiers) if isinstance(decision, OfferFallback) else None
    view = lease_view(rt, lease)
    until = wait_until(rt, lease)
    deadline = f" It is cancelled if still waiting at {format_moment(until)}." if until is not None else ""
    if isinstance(decision, OfferFallback):
        outbox.add(
            session,
            key=f"{lease.id}:fallback:{','.join(decision.tiers)}",
            target="requester",
            lease_id=lease.id,
            now=now,
            notice=Notice(
                kind="lease.fallback_offered",
                text=f"{lease.tier} is full ({decision.reason}). {', '.join(decision.tiers)} can take "
                f"{lease.namespace} now; accept one, or keep waiting.{deadline}",
                lease=view,
                data={"tiers": list(decision.tiers)},
                actions=("accept_fallback", "cancel"),
            ),
        )
    else:
        text = (
            f"{lease.namespace} waits for a node to be reconfigured for {lease.tier}; you will hear "
            "when it is ready."
            if moving
            else f"{lease.namespace} is on the waitlist for {lease.tier}: {decision.reason}."
        )
        outbox.add(
            session,
            # Once per tier: a lease that waits again after taking a fallback hears it again.
            key=f"{lease.id}:waitlisted:{lease.tier}",
            target="requester",
            lease_id=lease.id,
            now=now,
            notice=Notice(kind="lease.waitlisted", text=text + deadline, lease=view, actions=("cancel",)),
        )
    if decision.drain is not None:
        follow_up.append(("drain_node", (lease.cluster, decision.drain.node, decision.drain.to_tier)))
        if again:
            # A drain begun for it on a later try: the requester hears which node, and when it
            # empties (the first message, which said why it waited then, is sent once).
            outbox.add(
                session,
                key=f"{lease.id}:drain:{decision.drain.node}",
                target="requester",
                lease_id=lease.id,
                now=now,
                notice=Notice(
                    kind="lease.waitlisted",
                    text=f"{lease.namespace} still waits for {lease.tier}: {decision.reason}.{deadline}",
                    lease=view,
                    actions=("cancel",),
                ),
            )
    return str(lease.state)
