"""Submitted modals become typed forms; the policy's refusals land on the right blocks."""

from __future__ import annotations

import json
from datetime import timedelta

from bot import ids
from bot.blocks.forms import deny_modal, request_modal
from bot.forms import RequestForm, block_errors, deny_reason, parse_request
from config.settings import EXAMPLE_POLICY
from gpulease.wiring import load_checked_policy
from leases.policy import FieldError
from sandbox.slack import payloads

POLICY = load_checked_policy(EXAMPLE_POLICY)


def submitted(view: dict, **inputs) -> dict:
    values = {block: {ids.INPUT: state} for block, state in inputs.items()}
    return {**view, "id": "V1", "state": {"values": payloads.state_values(values)}}


def test_a_filled_in_form_becomes_a_request():
    view = request_modal(POLICY, [POLICY.team("ml-research")])
    form, errors = parse_request(submitted(
        view, namespace="alice-nb", tier=payloads.radio_buttons("h100-3g"), units=payloads.number_input(2),
        duration="1d12h", reason="fine-tuning"))
    assert errors == {}
    assert form == RequestForm("alice-nb", "ml-research", "h100-3g", 2, timedelta(days=1, hours=12), "fine-tuning")


def test_the_team_comes_from_the_chooser_when_there_is_one():
    view = request_modal(POLICY, list(POLICY.teams))
    assert json.loads(view["private_metadata"]) == {}
    form, _ = parse_request(submitted(
        view, namespace="x", team=payloads.static_select("vision"), tier=payloads.radio_buttons("h100-1g"),
        units=payloads.number_input(1), duration=None, reason="r"))
    assert form is not None and form.team == "vision" and form.duration is None


def test_unreadable_fields_are_named():
    view = request_modal(POLICY, [POLICY.team("vision")])
    form, errors = parse_request(submitted(
        view, namespace="x", tier=payloads.radio_buttons("h100-1g"), units=payloads.number_input("two"),
        duration="soon", reason=""))
    assert form is None and set(errors) == {ids.UNITS, ids.DURATION, ids.REASON}


def test_a_duration_without_a_unit_is_refused_not_read_as_seconds():
    view = request_modal(POLICY, [POLICY.team("vision")])
    form, errors = parse_request(submitted(
        view, namespace="x", tier=payloads.radio_buttons("h100-1g"), units=payloads.number_input(1),
        duration="8", reason="r"))
    assert form is None and errors == {ids.DURATION: "'8' has no unit: write a unit, e.g. 8h or 3d"}


def test_refusals_map_onto_blocks_and_nothing_is_lost():
    view = request_modal(POLICY, [POLICY.team("vision")])  # no team chooser
    errors = block_errors((
        FieldError("namespace", "reserved"),
        FieldError("units", "over quota"),
        FieldError("requester", "too many leases"),
        FieldError("team", "not a member"),
    ), view)
    assert errors == {"namespace": "reserved; too many leases; not a member", "units": "over quota"}


def test_the_deny_modal_carries_the_lease_and_returns_the_reason():
    view = deny_modal(lease_id="L1", namespace="alice-nb", requester="U0ALICE")
    assert deny_reason(submitted(view, reason="use h100-1g")) == ("L1", "use h100-1g")
    assert deny_reason(submitted(view, reason="   ")) == ("L1", "")
