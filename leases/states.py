"""Lease states and the transitions between them, as plain data.

Pure (no database): the models store `LeaseState`, `leases.lifecycle` enforces the table, and
tests and the placer read it. May be imported by anything through leases; `leases.lifecycle`
re-exports it, so most callers import it from there.

Beyond the happy path in DESIGN §3 the table allows:
- `failed` from every non-terminal state: a step that cannot finish compensates (removes what
  it created, releases the reservation) and then marks the lease failed.
- `provisioning -> reclaiming`: a lease revoked or released while its namespace is being
  created is torn down like an active one, so nothing it created is left behind.
"""

from __future__ import annotations

from enum import StrEnum

from leases.errors import InvalidTransition


class LeaseState(StrEnum):
    """Where a lease is in its life; the value is what the store holds."""

    REQUESTED = "requested"
    PENDING_APPROVAL = "pending_approval"
    APPROVED = "approved"
    PLACING = "placing"
    WAITLISTED = "waitlisted"
    PROVISIONING = "provisioning"
    ACTIVE = "active"
    EXPIRING = "expiring"
    RECLAIMING = "reclaiming"
    RECLAIMED = "reclaimed"
    DENIED = "denied"
    CANCELLED = "cancelled"
    EXPIRED_UNAPPROVED = "expired_unapproved"
    FAILED = "failed"


class Decision(StrEnum):
    """An approver's answer to a request."""

    APPROVE = "approve"
    DENY = "deny"


S = LeaseState

TERMINAL_STATES: frozenset[LeaseState] = frozenset(
    {S.RECLAIMED, S.DENIED, S.CANCELLED, S.EXPIRED_UNAPPROVED, S.FAILED}
)
# A live lease holds its namespace name (and possibly capacity): everything not terminal.
LIVE_STATES: frozenset[LeaseState] = frozenset(set(LeaseState) - TERMINAL_STATES)
# States in which nobody has decided the request yet.
UNDECIDED_STATES: frozenset[LeaseState] = frozenset({S.REQUESTED, S.PENDING_APPROVAL})

_MAIN: dict[LeaseState, frozenset[LeaseState]] = {
    S.REQUESTED: frozenset({S.PENDING_APPROVAL, S.APPROVED, S.DENIED, S.CANCELLED}),
    S.PENDING_APPROVAL: frozenset({S.APPROVED, S.DENIED, S.CANCELLED, S.EXPIRED_UNAPPROVED}),
    S.APPROVED: frozenset({S.PLACING, S.CANCELLED}),
    S.PLACING: frozenset({S.PROVISIONING, S.WAITLISTED, S.CANCELLED}),
    S.WAITLISTED: frozenset({S.PLACING, S.CANCELLED}),
    S.PROVISIONING: frozenset({S.ACTIVE, S.RECLAIMING}),
    S.ACTIVE: frozenset({S.ACTIVE, S.EXPIRING, S.RECLAIMING}),
    S.EXPIRING: frozenset({S.ACTIVE, S.RECLAIMING}),
    S.RECLAIMING: frozenset({S.RECLAIMED}),
}

ALLOWED: dict[LeaseState, frozenset[LeaseState]] = {
    state: (_MAIN[state] | {S.FAILED}) if state in LIVE_STATES else frozenset()
    for state in LeaseState
}


def is_allowed(from_state: LeaseState, to_state: LeaseState) -> bool:
    """Return whether the lifecycle allows moving from one state to the other."""
    return to_state in ALLOWED[LeaseState(from_state)]


def check_transition(from_state: LeaseState, to_state: LeaseState) -> None:
    """Raise InvalidTransition, naming both states, unless the move is allowed."""
    from_state, to_state = LeaseState(from_state), LeaseState(to_state)
    if is_allowed(from_state, to_state):
        return
    if from_state in TERMINAL_STATES:
        detail = f"{from_state} is final"
    else:
        options = ", ".join(sorted(ALLOWED[from_state]))
        detail = f"from {from_state} a lease can go to: {options}"
    raise InvalidTransition(
        f"a lease cannot go from {from_state} to {to_state} ({detail})", field="state"
    )
