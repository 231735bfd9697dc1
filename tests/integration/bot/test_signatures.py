"""Requests Slack did not sign, or signed more than 5 minutes ago, are refused with 401 and
do nothing."""

from __future__ import annotations

import pytest

from . import flows


@pytest.mark.parametrize("tamper", [{"bad_signature": True}, {"stale": True}])
def test_wrong_or_stale_signatures_get_401_and_change_nothing(to_bot, slack, tamper):
    command = to_bot.slash_command("/gpu-namespace", user_id="U0ALICE", **tamper)
    assert command.status == 401
    flows.submit(to_bot, slack, "U0ALICE", "alice-sig")
    card = flows.card(slack, "alice-sig")
    click = to_bot.block_action("lease.approve", user_id="U0APPROVER1", channel=flows.APPROVALS, message=card,
                                **tamper)
    assert click.status == 401
    assert len(slack.calls("views.open")) == 1  # only the properly signed command opened a form
    assert slack.calls("chat.update") == [] and slack.ephemerals(user="U0APPROVER1") == []
