"""An approval card Slack will never let the bot rewrite (the bot left the channel, the channel
is archived, the message is refused as written) is logged and given up at once, so the
requester's own messages queued behind it in the outbox still arrive; errors that pass
(rate limits, 5xx) are still raised for the outbox to retry."""

from __future__ import annotations

import logging

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.client import make_client
from bot.notifier import SlackNotifier
from leases.ports import MessageRef, Notice
from sandbox.slack import DEFAULT_TOKEN

from . import flows

LEASE = {"id": "L7", "namespace": "alice-nb", "requester": "U0ALICE", "team": "ml-research", "tier": "h100-3g",
         "tier_display": "3/7 of an H100", "units": 1, "duration": "2d", "reason": "r", "state": "approved",
         "expires_at": None, "extensions": 0}
OUTCOME = Notice("approval.approved", "Approved by <@U0APPROVER1>", LEASE,
                 {"decided_by": "U0APPROVER1", "outcome": "approved"})


def posted_card(slack) -> MessageRef:
    notifier = SlackNotifier(make_client(DEFAULT_TOKEN, base_url=slack.url), approvals_channel="C0APPROVALS")
    return notifier.approval_card(channel=None, notice=Notice("approval.requested", "asks", LEASE))


def test_the_requester_hears_although_the_bot_left_the_approvals_channel(to_bot, slack, caplog):
    flows.submit(to_bot, slack, "U0ALICE", "alice-left", tier="h100-3g")
    card = flows.card(slack, "alice-left")
    slack.add_fault("chat.update", status=200, error="not_in_channel", times=1000)
    with caplog.at_level(logging.ERROR, logger="bot.notifier"):
        to_bot.block_action("lease.approve", user_id="U0APPROVER1", channel=flows.APPROVALS, message=card)
        flows.dm_about(slack, "U0ALICE", "approved alice-left")
        flows.dm_about(slack, "U0ALICE", "alice-left is ready", timeout=20)
    assert len(slack.calls("chat.update")) == 1  # given up at once, not retried
    [dropped] = [r for r in caplog.records if getattr(r, "event", None) == "notify.card_dropped"]
    assert dropped.error == "not_in_channel" and dropped.lease_id == flows.lease_id_of("alice-left")
    assert dropped.channel == flows.APPROVALS and dropped.ts == card["ts"] and dropped.kind == "approval.approved"


@pytest.mark.parametrize("error", ["is_archived", "msg_too_long", "invalid_blocks"])
def test_refusals_retrying_cannot_fix_are_logged_not_raised(slack, caplog, error):
    card = posted_card(slack)
    slack.add_fault("chat.update", status=200, error=error)
    notifier = SlackNotifier(make_client(DEFAULT_TOKEN, base_url=slack.url), approvals_channel="C0APPROVALS")
    with caplog.at_level(logging.ERROR, logger="bot.notifier"):
        notifier.update_approval_card(card=card, notice=OUTCOME)
    assert [r.error for r in caplog.records if getattr(r, "event", None) == "notify.card_dropped"] == [error]
    assert len(slack.messages("C0APPROVALS")) == 1  # nothing posted beside it either


def test_a_gone_channel_where_posting_fails_too_is_given_up(slack, caplog):
    card = posted_card(slack)
    slack.add_fault("chat.update", status=200, error="channel_not_found")
    slack.add_fault("chat.postMessage", status=200, error="channel_not_found")
    notifier = SlackNotifier(make_client(DEFAULT_TOKEN, base_url=slack.url), approvals_channel="C0APPROVALS")
    with caplog.at_level(logging.WARNING, logger="bot.notifier"):
        notifier.update_approval_card(card=card, notice=OUTCOME)
    events = [getattr(r, "event", None) for r in caplog.records]
    assert events == ["notify.card_not_updated", "notify.card_dropped"]
    assert [c.method for c in slack.calls() if c.method.startswith("chat.")][-2:] == ["chat.update",
                                                                                       "chat.postMessage"]


@pytest.mark.parametrize(("status", "error"), [(429, "ratelimited"), (500, "internal_error"),
                                               (200, "fatal_error")])
def test_errors_that_pass_are_raised_for_the_outbox_to_retry(slack, status, error):
    card = posted_card(slack)
    slack.add_fault("chat.update", status=status, error=error)
    # Without the client's own retries, so the first answer reaches the notifier.
    client = WebClient(token=DEFAULT_TOKEN, base_url=slack.url, retry_handlers=[])
    notifier = SlackNotifier(client, approvals_channel="C0APPROVALS")
    with pytest.raises(SlackApiError) as raised:
        notifier.update_approval_card(card=card, notice=OUTCOME)
    assert raised.value.response["error"] == error
