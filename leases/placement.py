"""Placement: a pure function of (inventory, reservations, request, tiers) → decision.

Where a lease of N units of a tier goes (DESIGN §4): on its pool now; on its pool once idle
nodes of other pools have moved to it (elastic pools, chosen in leases.moves); on a tier the
requester accepts instead; else it waits (naming a node to drain, when one could be spared
once empty), is offered fallback tiers, or is refused when the tier could never hold it. It
never over-commits: a node being moved counts for no tier until its move has finished.
Imported by workflows (placing, the waitlist sweep), the CLI and bench; imports only leases.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from config.durations import format_moment
from leases.capacity import NodeState, Reservations, TierSpec
from leases.moves import (
    MovePlan,
    NodeDrain,
    Pools,
    Prices,
    choose_drain,
    movable,
    plan_move,
    summarise,
)

__all__ = [
    "Decision",
    "OfferFallback",
    "PlaceAfterMove",
    "PlaceNow",
    "PlacementRequest",
    "Refuse",
    "Waitlist",
    "decide",
    "place",
]


@dataclass(frozen=True)
class PlacementRequest:
    """N units of a tier; `fallback` tiers to offer (default: the tier's own list), `accepts`,
    tiers the requester takes without being asked when theirs is full, `wait_until`, when
    it leaves the waitlist, and `ends_at`, when the lease would end if placed now (POSIX
    seconds, same clock as `NodeState.empties_at`; None: no limit, unknown)."""

    tier: str
    units: int
    fallback: tuple[str, ...] = ()
    accepts: frozenset[str] = frozenset()
    wait_until: float | None = None
    ends_at: float | None = None


@dataclass(frozen=True)
class PlaceNow:
    """Reserve the units on `tier` now."""

    tier: str
    reason: str


@dataclass(frozen=True)
class PlaceAfterMove:
    """Move the plan's nodes to `tier`, then reserve the units there."""

    tier: str
    plan: MovePlan
    reason: str


@dataclass(frozen=True)
class Waitlist:
    """Wait for capacity; when `drain` is given, drain that node so it empties for the tier."""

    reason: str
    drain: NodeDrain | None = None


@dataclass(frozen=True)
class OfferFallback:
    """Ask the requester whether one of `tiers` will do (they may keep waiting instead)."""

    tiers: tuple[str, ...]
    reason: str
    drain: NodeDrain | None = None


@dataclass(frozen=True)
class Refuse:
    """The request cannot be placed as asked: never (`lasting`: it asks for an unknown tier,
    more units than a lease may hold), or not on the cluster's nodes as they are now (every
    node of the tier's GPU model would not hold it; a node that left may come back)."""

    reason: str
    lasting: bool = True


Decision = PlaceNow | PlaceAfterMove | Waitlist | OfferFallback | Refuse


def place(
    *,
    inventory: Sequence[NodeState],
    reservations: Reservations,
    request: PlacementRequest,
    tiers: Mapping[str, TierSpec],
    in_flight: int,
    max_in_flight: int,
    waiting: Mapping[str, int] | None = None,
    prices: Prices | None = None,
    drain_deadline: float | None = None,
    paused: frozenset[str] = frozenset(),
) -> Decision:
    """Decide where the request goes.

    `in_flight` counts nodes being reconfigured now (at most `max_in_flight`); `waiting` is
    units per tier of the other requests waiting (not this one), so moves are sized for the
    queue and no pool gives away a node its own queue needs. `prices` (optional: a valuation
    of pools learned from recent arrivals, see leases.rebalance) makes a move or a drain happen
    only when the request's tier gains more than the donor loses, by a margin; a donor may then
    give up a node its own queue wants, when the node is worth more elsewhere. A node not known
    to empty by `drain_deadline` is not drained (its drain would be given up first). No node
    moves or drains toward a `paused` tier (a reconfiguration to it failed lately).
    """
    pools = summarise(
        inventory=inventory, reservations=reservations, tiers=tiers, waiting=waiting, prices=prices, paused=paused
    )
    return decide(
        pools=pools,
        request=request,
        in_flight=in_flight,
        max_in_flight=max_in_flight,
        drain_deadline=drain_deadline,
    )


def decide(
    *,
    pools: Pools,
    request: PlacementRequest,
    in_flight: int,
    max_in_flight: int,
    drain_deadline: float | None = None,
) -> Decision:
    """Decide where the request goes, given pools already summarised."""
    spec = pools.tiers.get(request.tier)
    if spec is None:
        return Refuse(f"unknown tier {request.tier}; tiers: {', '.join(sorted(pools.tiers))}")
    refusal = _refusal(pools, spec, request)
    if refusal is not None:
        return refusal
    units, tier = request.units, request.tier
    free = pools.free(tier)
    if free >= units:
        return PlaceNow(tier, f"{tier} has {free} free units")
    room = pools.room_until(tier, request.ends_at)
    if room >= units:
        # Its draining nodes would sit half empty until their last lease ends: a lease that
        # ends before that uses them without delaying any move.
        return PlaceNow(
            tier, f"{tier} has {room} units until its draining nodes empty, the lease ends before"
        )
    incoming = pools.incoming.get(tier, 0)
    own_short = units - free - incoming
    need = own_short + pools.waiting.get(tier, 0)
    slots = max_in_flight - in_flight
    plan = plan_move(pools=pools, target=spec, need=need, required=max(own_short, 1), slots=slots)
    if plan is not None:
        moves = ", ".join(
            f"{m.node} ({m.from_tier or 'unlabelled'} → {tier}, +{m.units_gained})" for m in plan.moves
        )
        return PlaceAfterMove(tier, plan, f"{tier} has {free} free units; moving {moves}")
    accepted = _alternative(pools, request, spec, accepted_only=True)
    if accepted:
        return PlaceNow(accepted[0], f"{tier} is full; {accepted[0]} is accepted instead and has room")
    short = f"{tier} has {free} free units, {units} asked"
    drain = None
    if need <= 0:
        why = f"{short}; {incoming} units are already on their way to it"
    elif tier in pools.paused:
        why = f"{short}; no node moves to it for now, as a reconfiguration to it failed"
    elif slots <= 0 and movable(pools=pools, target=spec):
        why = f"{short}; an idle node could move but {in_flight} of {max_in_flight} moves are in flight"
    else:
        drain = choose_drain(pools=pools, target=spec, wait_until=request.wait_until, deadline=drain_deadline)
        if drain is not None:
            why = f"{short}; draining {drain.node} ({drain.from_tier}, {drain.gpu_pods} GPU pods) for it"
            if drain.empties_at is not None:
                why += f", empty by {format_moment(drain.empties_at)}"
        else:
            why = f"{short}; no other pool can spare a node now"
    offers = _alternative(pools, request, spec, accepted_only=False)
    if offers:
        return OfferFallback(offers, f"{why}; {', '.join(offers)} can take it now", drain)
    return Waitlist(why, drain)


def _refusal(pools: Pools, spec: TierSpec, request: PlacementRequest) -> Refuse | None:
    if request.units < 1:
        return Refuse(f"a lease needs at least 1 unit, not {request.units}")
    if request.units > spec.max_units:
        return Refuse(f"{request.tier} allows at most {spec.max_units} units per lease, {request.units} asked")
    ever = pools.ever(request.tier)
    if request.units > ever:
        return Refuse(
            f"{request.tier} could hold at most {ever} units on this cluster "
            f"(every {spec.gpu_model} node in it), {request.units} asked",
            lasting=False,
        )
    return None


def _alternative(
    pools: Pools, request: PlacementRequest, spec: TierSpec, *, accepted_only: bool
) -> tuple[str, ...]:
    """Return tiers other than the asked one with room for the request now, in preference order."""
    if accepted_only:
        order = [t for t in (*request.fallback, *spec.fallback) if t in request.accepts]
        order += sorted(request.accepts - set(order))
    else:
        order = [t for t in (request.fallback or spec.fallback) if t not in request.accepts]
    seen: set[str] = set()
    fits = []
    for name in order:
        other = pools.tiers.get(name)
        if name in seen or name == request.tier or other is None:
            continue
        seen.add(name)
        if request.units <= other.max_units and pools.free(name) >= request.units:
            fits.append(name)
    return tuple(fits)
