"""When Slack will not say who is in a user group: a form's submission is checked at once
with the last answer (Slack is asked again in the background), a group never read shows up
as a field error the user can retry, and after an hour without an answer approvers who are
approvers only through a group are told that Slack did not answer, not that they may not
approve. The directory's clock is one the test moves, to stand for the cache growing old."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bot.app import build_app
from bot.client import make_quick_client
from bot.directory import GROUP_TTL_S, STALE_LIMIT_S, Directory, policy_groups
from sandbox.slack import DEFAULT_SIGNING_SECRET, DEFAULT_TOKEN
from workflows import api

from . import flows
from .conftest import POLICY, eventually, served


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def bot_url(runtime, slack_client, slack, clock) -> Iterator[str]:
    directory = Directory(slack_client, policy_groups(POLICY), clock=clock,
                          lookup_client=make_quick_client(DEFAULT_TOKEN, base_url=slack.url))
    app = build_app(client=slack_client, signing_secret=DEFAULT_SIGNING_SECRET, policy=POLICY, directory=directory)
    with served(app) as url:
        yield url


def test_a_submission_is_checked_with_the_last_answer_while_slack_rate_limits(to_bot, slack, clock):
    form = flows.open_form(to_bot, slack, "U0ALICE")  # the directory reads the groups here...
    clock.now += GROUP_TTL_S + 1  # ...and its answer has expired since
    slack.add_fault("usergroups.users.list", status=429, retry_after=3, times=1)
    answer = to_bot.view_submission(form, flows.values("alice-cached"), user_id="U0ALICE")
    assert answer.elapsed < 1.0 and answer.json() is None
    flows.card(slack, "alice-cached")
    # Slack was asked again behind the answer, and once Retry-After passed it answered.
    def refreshed() -> bool:
        calls = slack.calls("usergroups.users.list")
        limited = [c.seq for c in calls if c.status == 429]
        return bool(limited) and any(c.ok and c.seq > limited[0] for c in calls)

    eventually(refreshed, what="the directory refreshed in the background")


def test_a_group_slack_cannot_read_is_a_field_error_and_the_form_stays(to_bot, slack, clock):
    # Carol is in vision by id, and in ml-research only through its Slack user group.
    slack.directory.add_usergroup("S0MLRESEARCH", "ml-research", ["U0ALICE", "U0BOB", "U0CAROL"])
    form = flows.open_form(to_bot, slack, "U0CAROL")
    clock.now += STALE_LIMIT_S + 1  # too old to stand in for Slack's answer
    slack.add_fault("usergroups.users.list", status=503, times=100)
    answer = to_bot.view_submission(form, flows.values("carol-ml", team="ml-research"), user_id="U0CAROL")
    assert answer.elapsed < flows.ACK_LIMIT_S
    body = answer.json()
    assert body["response_action"] == "errors" and set(body["errors"]) == {"team"}
    shown = body["errors"]["team"]
    assert "Slack did not tell me who is in the user group S0MLRESEARCH" in shown
    assert "whether you are in team ml-research" in shown and "ref " in shown
    assert slack.views("U0CAROL") and api.leases(live=False) == []  # what Carol typed is still there

    slack.clear_faults()  # Slack answers again: the same form goes through
    again = to_bot.view_submission(form, flows.values("carol-ml", team="ml-research"), user_id="U0CAROL")
    assert again.json() is None
    assert api.lease_details(flows.lease_id_of("carol-ml"))["team"] == "ml-research"


def test_after_an_hour_without_slack_group_approvers_are_told_why(to_bot, slack, clock):
    flows.submit(to_bot, slack, "U0ALICE", "alice-outage", tier="h100-3g")
    card = flows.card(slack, "alice-outage")
    clock.now += STALE_LIMIT_S + 1
    slack.add_fault("usergroups.users.list", status=503, times=1000)

    # U0APPROVER2 approves through the S0GPUAPPROVERS group, which Slack will not list.
    to_bot.block_action("lease.approve", user_id="U0APPROVER2", channel=flows.APPROVALS, message=card)
    note = flows.ephemeral(slack, "U0APPROVER2", "Slack did not tell me who is in the user group S0GPUAPPROVERS")
    assert "whether you may decide requests for tier h100-3g" in note["text"]
    assert "not an approver" not in note["text"] and "Try again in a few minutes" in note["text"]
    assert api.lease_details(flows.lease_id_of("alice-outage"))["state"] == "pending_approval"

    # U0APPROVER1 is an approver by user id: the outage does not stand in their way.
    to_bot.block_action("lease.approve", user_id="U0APPROVER1", channel=flows.APPROVALS, message=card)
    eventually(lambda: "Approved" in str(flows.current(slack, card)["blocks"]), what="the approval")
