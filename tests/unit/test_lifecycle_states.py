"""The lease state machine as data: which moves are allowed, and the shape of the graph."""

from __future__ import annotations

import importlib.util
import itertools

import pytest

from leases.errors import InvalidTransition
from leases.lifecycle import (
    ALLOWED,
    LIVE_STATES,
    TERMINAL_STATES,
    LeaseState,
    check_transition,
    is_allowed,
)
from leases.models import Lease
from leases.store import MIGRATIONS_DIR

S = LeaseState

# The table of DESIGN §3 and the brief, written out independently of leases.states.
EXPECTED = {
    (S.REQUESTED, S.PENDING_APPROVAL),
    (S.REQUESTED, S.APPROVED),
    (S.REQUESTED, S.DENIED),
    (S.REQUESTED, S.CANCELLED),
    (S.PENDING_APPROVAL, S.APPROVED),
    (S.PENDING_APPROVAL, S.DENIED),
    (S.PENDING_APPROVAL, S.CANCELLED),
    (S.PENDING_APPROVAL, S.EXPIRED_UNAPPROVED),
    (S.APPROVED, S.PLACING),
    (S.APPROVED, S.CANCELLED),
    (S.PLACING, S.PROVISIONING),
    (S.PLACING, S.WAITLISTED),
    (S.PLACING, S.CANCELLED),
    (S.WAITLISTED, S.PLACING),
    (S.WAITLISTED, S.CANCELLED),
    (S.PROVISIONING, S.ACTIVE),
    (S.PROVISIONING, S.RECLAIMING),
    (S.ACTIVE, S.ACTIVE),
    (S.ACTIVE, S.EXPIRING),
    (S.ACTIVE, S.RECLAIMING),
    (S.EXPIRING, S.ACTIVE),
    (S.EXPIRING, S.RECLAIMING),
    (S.RECLAIMING, S.RECLAIMED),
} | {(state, S.FAILED) for state in LIVE_STATES}

ALL_PAIRS = list(itertools.product(LeaseState, repeat=2))
FORBIDDEN = [pair for pair in ALL_PAIRS if pair not in EXPECTED]


def test_table_is_exactly_the_designed_one():
    actual = {(a, b) for a, targets in ALLOWED.items() for b in targets}
    assert actual == EXPECTED


@pytest.mark.parametrize(("from_state", "to_state"), sorted(EXPECTED), ids=str)
def test_allowed_transition_passes(from_state, to_state):
    assert is_allowed(from_state, to_state)
    check_transition(from_state, to_state)


@pytest.mark.parametrize(("from_state", "to_state"), FORBIDDEN, ids=str)
def test_forbidden_transition_is_refused_naming_both_states(from_state, to_state):
    assert not is_allowed(from_state, to_state)
    with pytest.raises(InvalidTransition) as refused:
        check_transition(from_state, to_state)
    assert f"from {from_state} to {to_state}" in refused.value.message
    assert refused.value.field == "state"


def test_states_are_live_or_terminal_never_both():
    assert set(LeaseState) == LIVE_STATES | TERMINAL_STATES
    assert not LIVE_STATES & TERMINAL_STATES
    assert {S.RECLAIMED, S.DENIED, S.CANCELLED, S.EXPIRED_UNAPPROVED, S.FAILED} == TERMINAL_STATES


def test_terminal_states_have_no_way_out():
    assert all(not ALLOWED[state] for state in TERMINAL_STATES)


def _reachable(start: LeaseState) -> set[LeaseState]:
    seen, todo = {start}, [start]
    while todo:
        for nxt in ALLOWED[todo.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def test_every_state_is_reachable_from_a_request():
    assert _reachable(S.REQUESTED) == set(LeaseState)


@pytest.mark.parametrize("state", sorted(LIVE_STATES), ids=str)
def test_every_live_state_can_end(state):
    assert _reachable(state) & TERMINAL_STATES
    assert S.FAILED in ALLOWED[state]


def test_strings_are_accepted_as_states():
    assert is_allowed("requested", "pending_approval")
    with pytest.raises(InvalidTransition):
        check_transition("reclaimed", "active")


def test_namespace_index_covers_exactly_the_live_states():
    # The partial unique index is what enforces one live lease per namespace; it must list
    # the live states, in the models and in the migration that created it.
    index = next(i for i in Lease.__table__.indexes if i.name == "uq_lease_live_namespace")
    predicate = str(index.dialect_options["postgresql"]["where"])
    assert predicate == str(index.dialect_options["sqlite"]["where"])
    for state in LeaseState:
        assert (f"'{state.value}'" in predicate) == (state in LIVE_STATES), state
    spec = importlib.util.spec_from_file_location(
        "initial_revision", MIGRATIONS_DIR / "versions" / "0001_create_the_state_store_tables.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert predicate == module.LIVE_STATES_SQL
