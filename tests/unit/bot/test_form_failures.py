"""Failures around modals: a form's submission check that fails keeps the form open with the
failure on a field; views.open that came too late says what to do; refusals read as
sentences that say once that nothing changed."""

from __future__ import annotations

import logging
from types import SimpleNamespace
from typing import Any

import pytest

from bot import errors, ids, modals
from bot.blocks.forms import deny_modal, request_modal
from config.settings import EXAMPLE_POLICY
from gpulease.wiring import load_checked_policy
from leases.errors import AlreadyDecided, DomainError, NotAuthorised

POLICY = load_checked_policy(EXAMPLE_POLICY)


class Ack:
    def __init__(self) -> None:
        self.response: dict[str, Any] | None = None

    def __call__(self, **answer: Any) -> None:
        self.response = answer


class Respond:
    def __init__(self) -> None:
        self.sent: list[dict] = []

    def __call__(self, **message: Any) -> None:
        self.sent.append(message)


def submission(view: dict[str, Any]) -> SimpleNamespace:
    body = {"type": "view_submission", "user": {"id": "U0CAROL"}, "view": view}
    return SimpleNamespace(ack=Ack(), respond=Respond(), client=None, body=body, view=view, context={})


def test_a_submission_check_that_fails_inside_keeps_the_form_open(caplog):
    def check(view):
        raise RuntimeError("database is gone")

    given = submission(request_modal(POLICY, list(POLICY.teams)))
    with caplog.at_level(logging.ERROR, logger="bot.errors"):
        errors.reported(deps=None, acks=True)(check)(given)  # type: ignore[arg-type]
    assert given.ack.response["response_action"] == "errors"
    [(block, shown)] = given.ack.response["errors"].items()
    assert block == ids.NAMESPACE and shown.startswith("💥 Something went wrong") and "database" not in shown
    ref = shown.rsplit("ref ", 1)[1].split(" ")[0].rstrip(".")
    assert any(ref in r.getMessage() for r in caplog.records) and caplog.records[0].exc_info
    assert given.respond.sent == []  # said in the form, not elsewhere


def test_a_refusal_about_a_field_lands_on_its_block():
    def check(view):
        raise DomainError("Slack did not tell me who is in the user group S0MLRESEARCH", field="team")

    given = submission(request_modal(POLICY, list(POLICY.teams)))
    errors.reported(deps=None, acks=True)(check)(given)  # type: ignore[arg-type]
    assert list(given.ack.response["errors"]) == [ids.TEAM]


def test_views_open_too_late_says_to_try_again_and_other_failures_stay_internal():
    with pytest.raises(DomainError) as late:
        modals.opened({modals.NOT_OPENED: "expired_trigger_id"}, what="the form", retry="run /gpu-namespace")
    assert late.value.message == "Slack took too long to open the form; please run /gpu-namespace again."
    with pytest.raises(DomainError, match="took too long"):
        modals.opened({modals.NOT_OPENED: "timeout"}, what="the form", retry="run /gpu-namespace")
    with pytest.raises(RuntimeError, match="invalid_arguments"):
        modals.opened({modals.NOT_OPENED: "invalid_arguments"}, what="the form", retry="run /gpu-namespace")
    opened = {"id": "V1", "title": "Request GPUs"}
    assert modals.opened({modals.OPENED: opened}, what="the form", retry="x") == opened


@pytest.mark.parametrize("message", [
    "This request was already approved by <@U0APPROVER1> at 2026-03-02 09:30 UTC.",
    "this request was already approved by <@U0APPROVER1> at 2026-03-02 09:30 UTC; nothing changed",
])
def test_already_decided_says_nothing_changed_once(message):
    text = errors.user_message(AlreadyDecided(message), "abc123")
    assert text.endswith("at 2026-03-02 09:30 UTC. Nothing changed. (ref abc123)")
    assert text.lower().count("nothing changed") == 1


def test_not_authorised_reads_as_a_sentence():
    text = errors.user_message(NotAuthorised("<@U0BOB> is not an approver for tier h100-3g"), "abc123")
    assert text == "⛔ <@U0BOB> is not an approver for tier h100-3g. Nothing changed. (ref abc123)"


def test_forms_open_with_the_input_blocks_they_keep_when_completed():
    # Slack keeps what was typed across views.update when block and action ids stay the same.
    def inputs(view: dict[str, Any]) -> list[tuple[str, str]]:
        return [(b["block_id"], b["element"]["action_id"]) for b in view["blocks"] if b["type"] == "input"]

    opened, alice = request_modal(POLICY, None), request_modal(POLICY, [POLICY.teams[0]])
    assert inputs(opened) == inputs(alice) and opened["callback_id"] == alice["callback_id"] == ids.REQUEST_VIEW
    assert "Looking up which teams" in str(opened["blocks"]) and opened["private_metadata"] == "{}"
    carol = request_modal(POLICY, list(POLICY.teams))
    assert [b for b in inputs(carol) if b[0] != ids.TEAM] == inputs(opened)
    first, named = deny_modal(lease_id="L1"), deny_modal(lease_id="L1", namespace="alice-nb", requester="U0ALICE")
    assert inputs(first) == inputs(named) and first["private_metadata"] == named["private_metadata"]
    assert "Deny *alice-nb* for <@U0ALICE>?" in str(named["blocks"])
