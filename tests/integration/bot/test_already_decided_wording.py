"""A second click on a decided request says who decided as a Slack mention, and that nothing
changed exactly once, in sentences."""

from __future__ import annotations

import re

from . import flows
from .conftest import eventually


def test_the_second_approver_reads_who_decided_and_that_nothing_changed(to_bot, slack):
    flows.submit(to_bot, slack, "U0ALICE", "alice-wording")
    card = flows.card(slack, "alice-wording")
    to_bot.block_action("lease.approve", user_id="U0APPROVER1", channel=flows.APPROVALS, message=card)
    eventually(lambda: "Approved" in str(flows.current(slack, card)["blocks"]), what="the first decision")

    to_bot.block_action("lease.approve", user_id="U0APPROVER2", channel=flows.APPROVALS, message=card)
    text = flows.ephemeral(slack, "U0APPROVER2", "already approved")["text"]
    assert re.fullmatch(r"ℹ️ This request was already approved by <@U0APPROVER1> at "
                        r"\d{4}-\d\d-\d\d \d\d:\d\d UTC\. Nothing changed\. \(ref [0-9a-f]{8}\)", text), text
