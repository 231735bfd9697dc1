"""Commands and buttons about a lease that is ending or over: each answer says what the lease is
and that nothing changed, and never claims to have done what it did not."""

from __future__ import annotations

import json
import re

from sqlmodel import select

from leases.models import AuditEvent
from leases.store import session_scope
from sandbox.slack import dm_channel_id
from workflows import api

from . import flows
from .conftest import eventually


def test_a_release_while_reclaiming_is_refused_to_others_and_not_repeated(to_bot, slack, kube, runtime):
    flows.active(to_bot, slack, "U0ALICE", "alice-rel")
    kube.deny(verb="delete", resource="namespaces")  # the reclaim cannot finish: the lease stays reclaiming
    to_bot.slash_command("/gpu-namespace", "release alice-rel", user_id="U0ALICE")
    flows.ephemeral(slack, "U0ALICE", "Releasing `alice-rel`")
    eventually(lambda: runtime.queue.idle() and api.lease_by_namespace("alice-rel").state == "reclaiming",
               what="the reclaim stuck")

    to_bot.slash_command("/gpu-namespace", "release alice-rel", user_id="U0BOB")
    refused = flows.ephemeral(slack, "U0BOB", "only the requester")
    assert refused["text"].startswith("⛔ only the requester or an admin can release this lease")
    to_bot.slash_command("/gpu-namespace", "release alice-rel", user_id="U0ALICE")
    again = flows.ephemeral(slack, "U0ALICE", "already")
    assert again["text"].startswith("ℹ️ alice-rel is being reclaimed already; you get a receipt when it is gone. "
                                    "Nothing changed.")
    assert not any("Releasing" in e["text"] for e in slack.ephemerals(user="U0BOB"))
    assert sum("Releasing" in e["text"] for e in slack.ephemerals(user="U0ALICE")) == 1


def test_its_in_use_on_the_idle_warning_of_a_released_lease_says_it_is_reclaimed(to_bot, slack, runtime):
    flows.active(to_bot, slack, "U0ALICE", "alice-idle")
    message = flows.idle_warning(slack, runtime, "U0ALICE", "alice-idle")
    to_bot.block_action("lease.release", user_id="U0ALICE", channel=dm_channel_id("U0ALICE"), message=message)
    flows.dm_about(slack, "U0ALICE", "Receipt", timeout=20)
    to_bot.block_action("lease.mark_busy", user_id="U0ALICE", channel=dm_channel_id("U0ALICE"), message=message)
    note = flows.ephemeral(slack, "U0ALICE", "reclaimed already")
    assert note["text"].startswith("ℹ️ alice-idle is reclaimed already. Nothing changed.")
    assert not any("is in use" in e["text"] for e in slack.ephemerals(user="U0ALICE"))


def test_deny_on_a_request_its_requester_withdrew_says_so_as_approve_does(to_bot, slack):
    flows.submit(to_bot, slack, "U0ALICE", "alice-wd", tier="h100-3g")
    card = flows.card(slack, "alice-wd")
    to_bot.slash_command("/gpu-namespace", "release alice-wd", user_id="U0ALICE")
    flows.ephemeral(slack, "U0ALICE", "was cancelled")
    to_bot.block_action("lease.deny", user_id="U0APPROVER1", channel=flows.APPROVALS, message=card)
    denied = flows.modal(slack, "U0APPROVER1", "withdrawn")["blocks"][0]["text"]["text"]
    to_bot.block_action("lease.approve", user_id="U0APPROVER2", channel=flows.APPROVALS, message=card)
    approved = flows.ephemeral(slack, "U0APPROVER2", "withdrawn")["text"]
    said = re.compile(r"ℹ️ This request was withdrawn by its requester at \d{4}-\d\d-\d\d \d\d:\d\d UTC\. "
                      r"Nothing changed\. \(ref [0-9a-f]{8}\)")
    assert said.fullmatch(denied) and said.fullmatch(approved), (denied, approved)


def test_deny_on_an_approved_request_names_who_approved_as_approve_does(to_bot, slack):
    flows.submit(to_bot, slack, "U0ALICE", "alice-ok", tier="h100-3g")
    card = flows.card(slack, "alice-ok")
    to_bot.block_action("lease.approve", user_id="U0APPROVER1", channel=flows.APPROVALS, message=card)
    eventually(lambda: "Approved" in str(flows.current(slack, card)["blocks"]), what="the first decision")
    to_bot.block_action("lease.deny", user_id="U0APPROVER2", channel=flows.APPROVALS, message=card)
    denied = flows.modal(slack, "U0APPROVER2", "already approved")["blocks"][0]["text"]["text"]
    assert re.fullmatch(r"ℹ️ This request was already approved by <@U0APPROVER1> at "
                        r"\d{4}-\d\d-\d\d \d\d:\d\d UTC\. Nothing changed\. \(ref [0-9a-f]{8}\)", denied), denied


def _extension_cards(slack) -> list[dict]:
    return [m for m in slack.messages(flows.APPROVALS) if "asks to extend" in m.get("text", "")]


def test_allow_or_deny_on_the_extension_card_of_a_lease_that_ended_says_it_ended(to_bot, slack):
    flows.active(to_bot, slack, "U0ALICE", "alice-end")
    to_bot.slash_command("/gpu-namespace", "extend alice-end 40d", user_id="U0ALICE")
    [card] = eventually(lambda: _extension_cards(slack), what="the extension card")
    to_bot.slash_command("/gpu-namespace", "release alice-end", user_id="U0ALICE")
    flows.dm_about(slack, "U0ALICE", "Receipt", timeout=20)
    for action, approver in (("extension.approve", "U0APPROVER1"), ("extension.deny", "U0APPROVER2")):
        to_bot.block_action(action, user_id=approver, channel=flows.APPROVALS, message=card)
        note = flows.ephemeral(slack, approver, "alice-end")["text"]
        assert note.startswith("ℹ️ `alice-end` has ended (it is reclaimed), so there is nothing left to extend. "
                               "Nothing changed."), note
        assert "answered" not in note
    assert flows.current(slack, card)["blocks"] == card["blocks"]
    told = [m.get("text", "") for m in flows.dms(slack, "U0ALICE")]
    assert not any("did not allow extending" in t or "(approved by" in t for t in told), told


def test_the_owner_of_a_revoked_lease_reads_who_revoked_it_and_why_as_typed(to_bot, slack):
    flows.active(to_bot, slack, "U0ALICE", "alice-rv")
    to_bot.slash_command("/gpu-admin", "revoke alice-rv over budget <!channel>", user_id="U0ADMIN")
    flows.ephemeral(slack, "U0ADMIN", "Revoking `alice-rv`")
    receipt = flows.dm_about(slack, "U0ALICE", "Receipt", timeout=20)
    shown = "alice-rv was revoked by <@U0ADMIN>: over budget &lt;!channel&gt;. Receipt: "
    assert receipt["text"].startswith(shown), receipt["text"]
    assert shown in str(receipt["blocks"]) and "<!channel>" not in f"{receipt['text']} {receipt['blocks']}"


def _requests(runtime, lease_id: str) -> list[int]:
    with session_scope(runtime.engine) as session:
        return list(session.exec(select(AuditEvent.id).where(
            AuditEvent.lease_id == lease_id, AuditEvent.action == "lease.extension_requested").order_by(AuditEvent.id)))


def test_deny_on_one_extension_card_leaves_the_other_card_open(to_bot, slack, runtime):
    flows.active(to_bot, slack, "U0ALICE", "alice-ext")
    lease_id = flows.lease_id_of("alice-ext")
    for n, length in enumerate(("40d", "50d"), start=1):
        to_bot.slash_command("/gpu-namespace", f"extend alice-ext {length}", user_id="U0ALICE")
        eventually(lambda n=n: len(_extension_cards(slack)) == n, what=f"the card asking for {length}")
    a, b = _extension_cards(slack)
    assert "by 5w5d" in a["text"] and "by 7w1d" in b["text"]
    to_bot.block_action("extension.deny", user_id="U0APPROVER1", channel=flows.APPROVALS, message=a)
    eventually(lambda: "Extension denied" in str(flows.current(slack, a)["blocks"]), what="card A denied")
    to_bot.block_action("extension.approve", user_id="U0APPROVER2", channel=flows.APPROVALS, message=b)
    eventually(lambda: "Extension allowed" in str(flows.current(slack, b)["blocks"]), what="card B allowed")
    assert api.lease_details(lease_id)["extensions"] == 1
    assert not any("denied this extension" in e["text"] for e in slack.ephemerals(user="U0APPROVER2"))


def test_allow_on_a_denied_card_naming_its_request_is_refused_while_another_is_open(to_bot, slack, runtime):
    flows.active(to_bot, slack, "U0ALICE", "alice-ext2")
    lease_id = flows.lease_id_of("alice-ext2")
    to_bot.slash_command("/gpu-namespace", "extend alice-ext2 40d", user_id="U0ALICE")
    [a] = eventually(lambda: _extension_cards(slack), what="card A")
    to_bot.block_action("extension.deny", user_id="U0APPROVER1", channel=flows.APPROVALS, message=a)
    eventually(lambda: "Extension denied" in str(flows.current(slack, a)["blocks"]), what="card A denied")
    to_bot.slash_command("/gpu-namespace", "extend alice-ext2 50d", user_id="U0ALICE")
    eventually(lambda: [m for m in _extension_cards(slack) if m["ts"] != a["ts"]], what="card B")
    first, second = _requests(runtime, lease_id)
    # Each card's buttons name the request they answer; card A's Allow, clicked late.
    a_value = json.loads(a["blocks"][-1]["elements"][0]["value"])
    b = next(m for m in _extension_cards(slack) if m["ts"] != a["ts"])
    assert a_value["r"] == first and json.loads(b["blocks"][-1]["elements"][0]["value"])["r"] == second
    to_bot.block_action("extension.approve", user_id="U0APPROVER2", channel=flows.APPROVALS, message=a,
                        value=json.dumps(a_value))
    note = flows.ephemeral(slack, "U0APPROVER2", "denied")["text"]
    assert note.startswith("ℹ️ <@U0APPROVER1> denied this extension of alice-ext2 already. Nothing changed."), note
    assert api.lease_details(lease_id)["extensions"] == 0 and second != first
