"""The Slack notifier against the sandbox: one thread per lease, cards updated in place (or
the outcome posted beside a card that cannot be edited), admins told, failures raised for
the outbox to retry."""

from __future__ import annotations

import logging

import pytest
from slack_sdk.errors import SlackApiError

from bot.client import make_client
from bot.notifier import SlackNotifier
from leases.ports import MessageRef, Notice
from sandbox.slack import DEFAULT_TOKEN, dm_channel_id

LEASE = {"id": "L1", "namespace": "alice-nb", "requester": "U0ALICE", "team": "ml-research", "tier": "h100-3g",
         "tier_display": "3/7 of an H100", "units": 1, "duration": "2d", "reason": "r", "state": "active",
         "expires_at": "2026-03-04T09:00:00+00:00", "extensions": 0}


@pytest.fixture
def notifier(slack) -> SlackNotifier:
    return SlackNotifier(make_client(DEFAULT_TOKEN, base_url=slack.url), approvals_channel="C0APPROVALS",
                         admins=["U0ADMIN"])


def test_requester_messages_share_one_thread(notifier, slack):
    first = notifier.to_requester(user="U0ALICE", thread=None, notice=Notice("lease.approved", "approved", LEASE))
    later = notifier.to_requester(user="U0ALICE", thread=first, notice=Notice("lease.active", "ready", LEASE,
                                                                               actions=("extend", "release")))
    assert first.channel == later.channel == dm_channel_id("U0ALICE") and later.ts == first.ts
    [reply] = slack.messages(first.channel, first.ts)[-1:]
    assert reply["text"] == "ready" and reply.get("reply_broadcast") is True  # "ready" also shows in the DM list


def test_a_card_that_cannot_be_edited_gets_the_outcome_beside_it(notifier, slack):
    slack.post_as_user("C0APPROVALS", "U0BOB", "someone else's message")
    foreign = slack.messages("C0APPROVALS")[-1]
    outcome = Notice("approval.approved", "Approved by <@U0APPROVER1>", LEASE,
                     {"decided_by": "U0APPROVER1", "outcome": "approved"})
    notifier.update_approval_card(card=MessageRef("C0APPROVALS", foreign["ts"]), notice=outcome)
    assert slack.calls("chat.update")[-1].response["error"] == "cant_update_message"
    assert "Approved" in str(slack.messages("C0APPROVALS")[-1]["blocks"])


def test_admins_are_told_and_failures_raise_for_the_outbox(notifier, slack):
    notifier.to_admins(notice=Notice("admin.orphan_namespace", "orphan ns-x"))
    assert "orphan ns-x" in slack.messages(dm_channel_id("U0ADMIN"))[-1]["text"]
    slack.add_fault("chat.postMessage", status=200, error="channel_not_found")
    with pytest.raises(SlackApiError):
        notifier.approval_card(channel=None, notice=Notice("approval.requested", "asks", LEASE))



def test_an_admin_who_cannot_be_dmed_neither_stops_nor_repeats_the_others(slack, caplog):
    # U0GONE is not in the workspace (any more): Slack refuses a DM to it.
    notifier = SlackNotifier(make_client(DEFAULT_TOKEN, base_url=slack.url), approvals_channel="C0APPROVALS",
                             admins=["U0GONE", "U0ADMIN"])
    with caplog.at_level(logging.ERROR, logger="bot.notifier"):
        notifier.to_admins(notice=Notice("admin.reclaim_stuck", "alice-nb cannot be reclaimed"))  # delivered
    assert [m["text"] for m in slack.messages(dm_channel_id("U0ADMIN"))] == ["alice-nb cannot be reclaimed"]
    [failed] = [r.getMessage() for r in caplog.records if "notify.admin_not_told" in r.getMessage()]
    assert "admin=U0GONE" in failed and "error=channel_not_found" in failed
    nobody = SlackNotifier(make_client(DEFAULT_TOKEN, base_url=slack.url), approvals_channel="C0APPROVALS",
                           admins=["U0GONE", "U0LEFT"])
    with pytest.raises(SlackApiError):  # nobody got it: the outbox tries again
        nobody.to_admins(notice=Notice("admin.reclaim_stuck", "alice-nb cannot be reclaimed"))
