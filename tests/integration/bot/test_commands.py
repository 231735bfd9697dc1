"""/gpu-namespace list | status NS | extend NS 3d | release NS | help, answered to the person
who typed it through the command's response_url."""

from __future__ import annotations

from workflows import api

from . import flows
from .conftest import eventually


def reply(to_bot, slack, user: str, text: str, fragment: str) -> dict:
    answer = to_bot.slash_command("/gpu-namespace", text, user_id=user)
    assert answer.status == 200 and answer.elapsed < flows.ACK_LIMIT_S
    return flows.ephemeral(slack, user, fragment)


def test_list_status_extend_and_release(to_bot, slack, kube):
    flows.active(to_bot, slack, "U0ALICE", "alice-cmd")
    listed = reply(to_bot, slack, "U0ALICE", "list", "Your leases")
    assert "alice-cmd" in str(listed["blocks"]) and "left" in str(listed["blocks"])
    status = reply(to_bot, slack, "U0ALICE", "status alice-cmd", "alice-cmd: active")
    assert "<@U0ALICE>" in str(status["blocks"])

    before = api.lease_by_namespace("alice-cmd").expires_at
    reply(to_bot, slack, "U0ALICE", "extend alice-cmd 1d", "now runs until")
    assert (api.lease_by_namespace("alice-cmd").expires_at - before).days == 1

    refused = reply(to_bot, slack, "U0BOB", "release alice-cmd", "only the requester")
    assert refused["text"].startswith("⛔")
    reply(to_bot, slack, "U0ALICE", "release alice-cmd", "Releasing `alice-cmd`")
    flows.dm_about(slack, "U0ALICE", "Receipt", timeout=20)
    eventually(lambda: kube.get("namespaces", "alice-cmd") is None, what="the namespace deleted")


def test_help_and_mistakes_show_the_usage(to_bot, slack):
    reply(to_bot, slack, "U0ALICE", "help", "/gpu-namespace list")
    wrong = reply(to_bot, slack, "U0ALICE", "extend alice-x soon", "not a duration")
    assert "/gpu-namespace extend NS 3d" in str(wrong["blocks"])
    reply(to_bot, slack, "U0ALICE", "frobnicate", "unknown command `frobnicate`")
    missing = reply(to_bot, slack, "U0ALICE", "status nobody-here", "no live lease holds namespace nobody-here")
    assert "ref " in missing["text"]


def test_an_extension_past_the_caps_goes_to_the_approvers(to_bot, slack):
    flows.active(to_bot, slack, "U0ALICE", "alice-long")
    for _ in range(2):  # the example policy allows two self-service extensions
        to_bot.slash_command("/gpu-namespace", "extend alice-long 1d", user_id="U0ALICE")
    eventually(lambda: len([e for e in slack.ephemerals(user="U0ALICE") if "now runs until" in e["text"]]) == 2,
               what="two extensions")
    reply(to_bot, slack, "U0ALICE", "extend alice-long 2d", "I asked the approvers")
    card = flows.card(slack, "alice-long")
    assert [e["action_id"] for e in card["blocks"][-1]["elements"]] == ["extension.approve", "extension.deny"]

    to_bot.block_action("extension.approve", user_id="U0ALICE", channel=flows.APPROVALS, message=card)
    flows.ephemeral(slack, "U0ALICE", "not an approver")
    to_bot.block_action("extension.approve", user_id="U0APPROVER1", channel=flows.APPROVALS, message=card)
    decided = eventually(lambda: "Extension allowed" in str(flows.current(slack, card)) and flows.current(slack, card),
                         what="the extension card rewritten")
    assert "actions" not in [b["type"] for b in decided["blocks"]]
    assert api.lease_details(flows.lease_id_of("alice-long"))["extensions"] == 3
    again = to_bot.block_action("extension.approve", user_id="U0APPROVER2", channel=flows.APPROVALS, message=card)
    assert again.status == 200
    flows.ephemeral(slack, "U0APPROVER2", "answered already")
    assert api.lease_details(flows.lease_id_of("alice-long"))["extensions"] == 3


def test_releasing_a_request_not_started_yet_cancels_it(to_bot, slack):
    flows.submit(to_bot, slack, "U0ALICE", "alice-early")  # 3g for 2 days: it waits for an approver
    card = flows.card(slack, "alice-early")
    reply(to_bot, slack, "U0ALICE", "release alice-early", "`alice-early` was cancelled: it had not started yet.")
    assert api.lease_details(flows.lease_id_of_any("alice-early"))["state"] == "cancelled"
    eventually(lambda: "actions" not in [b["type"] for b in flows.current(slack, card)["blocks"]],
               what="the approval card closed")
