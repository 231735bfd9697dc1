"""Request → approval card → Approve / Deny, through signed requests into the running app:
the card is rewritten in place with who decided, the requester hears in one DM thread, and
every click is authorised on the server (non-approvers, self-approval, second clicks)."""

from __future__ import annotations

from sandbox.slack import dm_channel_id
from workflows import api

from . import flows
from .conftest import eventually


def buttons_of(message: dict) -> list[str]:
    return [e["action_id"] for b in message.get("blocks", []) if b["type"] == "actions" for e in b["elements"]]


def test_request_then_approve_makes_the_lease_active(to_bot, slack, kube):
    flows.active(to_bot, slack, "U0BOB", "bob-warmup")  # a first placement syncs the pools' capacity
    answer = flows.submit(to_bot, slack, "U0ALICE", "alice-exp", tier="h100-3g", duration="2d")
    assert answer.json() is None and slack.views("U0ALICE") == []  # acked: the modal closed
    card = flows.card(slack, "alice-exp")
    assert buttons_of(card) == ["lease.approve", "lease.deny"]
    text = str(card["blocks"])
    assert "<@U0ALICE>" in text and "h100-3g" in text and "fine-tuning a 7B model" in text
    assert "team: 2 of 4 h100-3g units with this request" not in text
    assert "team: 1 of 4 h100-3g units with this request" in text and "pool: 16 of 16 units free" in text
    waiting = flows.dm_about(slack, "U0ALICE", "waiting for an approver")

    click = to_bot.block_action("lease.approve", user_id="U0APPROVER1", channel=flows.APPROVALS, message=card)
    assert click.status == 200 and click.elapsed < flows.ACK_LIMIT_S

    decided = eventually(lambda: "Approved" in str(flows.current(slack, card)["blocks"]) and flows.current(slack, card),
                         what="the card rewritten")
    assert "by <@U0APPROVER1>" in str(decided["blocks"]) and buttons_of(decided) == []
    ready = flows.dm_about(slack, "U0ALICE", "alice-exp is ready", timeout=20)
    assert "kubectl config set-context --current --namespace=alice-exp" in str(ready["blocks"])
    assert buttons_of(ready) == ["lease.extend", "lease.release"]
    thread = slack.messages(dm_channel_id("U0ALICE"), waiting["ts"])
    assert [m["ts"] for m in thread[-2:]] == [flows.dm_about(slack, "U0ALICE", "approved")["ts"], ready["ts"]]
    assert kube.get("namespaces", "alice-exp")["metadata"]["labels"]["gpulease.io/tier"] == "h100-3g"
    assert len(slack.calls("chat.update")) == 1


def test_deny_asks_for_a_reason_and_tells_the_requester(to_bot, slack, kube):
    flows.submit(to_bot, slack, "U0ALICE", "alice-big", tier="h100-3g")
    card = flows.card(slack, "alice-big")
    click = to_bot.block_action("lease.deny", user_id="U0APPROVER1", channel=flows.APPROVALS, message=card)
    assert click.status == 200 and click.elapsed < flows.ACK_LIMIT_S
    modal = flows.modal(slack, "U0APPROVER1", "Deny *alice-big* for <@U0ALICE>?")

    empty = to_bot.view_submission(modal, {"reason": {"value": ""}}, user_id="U0APPROVER1")
    assert empty.json()["response_action"] == "errors" and "reason" in empty.json()["errors"]
    to_bot.view_submission(modal, {"reason": {"value": "use h100-1g for notebooks"}}, user_id="U0APPROVER1")

    denied = eventually(lambda: "Denied" in str(flows.current(slack, card)["blocks"]) and flows.current(slack, card),
                        what="the card rewritten")
    assert "by <@U0APPROVER1>: use h100-1g for notebooks" in str(denied["blocks"]) and buttons_of(denied) == []
    flows.dm_about(slack, "U0ALICE", "denied alice-big: use h100-1g for notebooks")
    assert api.lease_details(flows.lease_id_of_any("alice-big"))["state"] == "denied"
    assert kube.get("namespaces", "alice-big") is None


def test_a_second_click_changes_nothing_and_says_who_decided(to_bot, slack):
    flows.submit(to_bot, slack, "U0ALICE", "alice-twice")
    card = flows.card(slack, "alice-twice")
    to_bot.block_action("lease.approve", user_id="U0APPROVER1", channel=flows.APPROVALS, message=card)
    eventually(lambda: "Approved" in str(flows.current(slack, card)["blocks"]), what="the first decision")

    again = to_bot.block_action("lease.approve", user_id="U0APPROVER1", channel=flows.APPROVALS, message=card)
    other = to_bot.block_action("lease.approve", user_id="U0APPROVER2", channel=flows.APPROVALS, message=card)
    assert again.status == other.status == 200
    note = flows.ephemeral(slack, "U0APPROVER2", "Nothing changed")
    assert "U0APPROVER1" in note["text"] and "ref " in note["text"]
    flows.ephemeral(slack, "U0APPROVER1", "Nothing changed")
    assert len(slack.calls("chat.update")) == 1
    # The outbox sends the requester's message in the background: wait for it, then count once.
    eventually(lambda: any("approved alice-twice" in m.get("text", "") for m in flows.dms(slack, "U0ALICE")),
               what="the requester told")
    assert sum("approved alice-twice" in m.get("text", "") for m in flows.dms(slack, "U0ALICE")) == 1


def test_a_non_approver_is_refused_and_the_card_stays(to_bot, slack):
    flows.submit(to_bot, slack, "U0ALICE", "alice-nb")
    card = flows.card(slack, "alice-nb")
    to_bot.block_action("lease.approve", user_id="U0BOB", channel=flows.APPROVALS, message=card)
    note = flows.ephemeral(slack, "U0BOB", "not an approver")
    assert note["text"].startswith("⛔") and "ref " in note["text"]
    to_bot.block_action("lease.deny", user_id="U0CAROL", channel=flows.APPROVALS, message=card)
    # The reason modal opens at once (the trigger lasts 3 s); the refusal replaces its form.
    refused = flows.modal(slack, "U0CAROL", "not an approver")
    assert not refused.get("submit")  # nothing to submit: the form is gone
    assert flows.current(slack, card)["blocks"] == card["blocks"]
    assert api.lease_details(flows.lease_id_of("alice-nb"))["state"] == "pending_approval"


def test_nobody_approves_their_own_request(to_bot, slack):
    # Alice becomes an approver through the approvers' user group, read from Slack.
    slack.directory.add_usergroup("S0GPUAPPROVERS", "gpu-approvers", ["U0APPROVER2", "U0ALICE"])
    flows.submit(to_bot, slack, "U0ALICE", "alice-self")
    card = flows.card(slack, "alice-self")
    to_bot.block_action("lease.approve", user_id="U0ALICE", channel=flows.APPROVALS, message=card)
    flows.ephemeral(slack, "U0ALICE", "cannot approve or deny your own request")
    to_bot.block_action("lease.deny", user_id="U0ALICE", channel=flows.APPROVALS, message=card)
    flows.modal(slack, "U0ALICE", "cannot approve or deny your own request")  # in place of the reason form
    assert api.lease_details(flows.lease_id_of("alice-self"))["state"] == "pending_approval"


def test_a_forged_button_value_is_refused_as_out_of_date(to_bot, slack):
    flows.submit(to_bot, slack, "U0ALICE", "alice-forged")
    card = flows.card(slack, "alice-forged")
    to_bot.block_action("lease.approve", user_id="U0APPROVER1", channel=flows.APPROVALS, message=card,
                        value="not-json")
    flows.ephemeral(slack, "U0APPROVER1", "out of date")
    assert api.lease_details(flows.lease_id_of("alice-forged"))["state"] == "pending_approval"


def test_what_requesters_and_approvers_type_pings_nobody_and_links_nowhere(to_bot, slack):
    typed = "<!channel> urgent <https://evil.example|approve here>"
    shown = "&lt;!channel&gt; urgent &lt;https://evil.example|approve here&gt;"
    flows.submit(to_bot, slack, "U0ALICE", "alice-inj", tier="h100-3g", reason=typed)
    card = flows.card(slack, "alice-inj")
    assert card["text"].startswith("<@U0ALICE> asks for") and card["text"].endswith(shown)
    assert card["blocks"][1]["text"]["text"] == f"*Reason*\n{shown}" and "<!channel>" not in str(card["blocks"])
    to_bot.block_action("lease.deny", user_id="U0APPROVER1", channel=flows.APPROVALS, message=card)
    modal = flows.modal(slack, "U0APPROVER1", "Deny *alice-inj*")
    to_bot.view_submission(modal, {"reason": {"value": "see <!here> & <https://evil.example|this>"}},
                           user_id="U0APPROVER1")
    denied = eventually(lambda: "Denied" in str(flows.current(slack, card)["blocks"]) and flows.current(slack, card),
                        what="the card rewritten")
    assert "by <@U0APPROVER1>: see &lt;!here&gt; &amp; &lt;https://evil.example|this&gt;" in str(denied["blocks"])
    told = flows.dm_about(slack, "U0ALICE", "<@U0APPROVER1> denied alice-inj: see &lt;!here&gt;")
    assert "<!here>" not in f"{told['text']} {told['blocks']} {denied['text']}"
    assert api.lease_details(flows.lease_id_of_any("alice-inj"))["reason"] == typed  # stored as typed
