"""The request form: opened from /gpu-namespace with the trigger, refusals answered as field
errors on the right blocks, accepted requests recorded once, and a 429 on the way to the
requester's DM retried so the message arrives exactly once."""

from __future__ import annotations

from sandbox.slack import dm_channel_id
from workflows import api

from . import flows


def test_the_form_offers_the_tiers_with_what_they_mean(to_bot, slack):
    form = flows.open_form(to_bot, slack, "U0ALICE")
    [opened] = slack.calls("views.open")
    assert opened.ok
    blocks = {b.get("block_id"): b for b in form["blocks"]}
    assert {"namespace", "tier", "units", "duration", "reason"} <= set(blocks)
    assert "team" not in blocks  # Alice is in one team only: no chooser, the team is in the metadata
    options = {o["value"]: o for o in blocks["tier"]["element"]["options"]}
    assert options["h100-1g"]["description"]["text"] == "1/7 of an H100, 10 GB, isolated"


def test_a_user_in_several_teams_chooses_one(to_bot, slack):
    # Carol is in vision by id, and in ml-research through its Slack user group.
    slack.directory.add_usergroup("S0MLRESEARCH", "ml-research", ["U0ALICE", "U0BOB", "U0CAROL"])
    form = flows.open_form(to_bot, slack, "U0CAROL")
    team = next(b for b in form["blocks"] if b.get("block_id") == "team")
    assert [o["value"] for o in team["element"]["options"]] == ["ml-research", "vision"]
    flows.submit(to_bot, slack, "U0CAROL", "carol-ml", tier="h100-3g", team="ml-research")
    lease = api.lease_details(flows.lease_id_of("carol-ml"))
    assert lease["team"] == "ml-research"


def test_invalid_names_come_back_as_field_errors(to_bot, slack):
    form = flows.open_form(to_bot, slack, "U0ALICE")
    for bad in ("kube-mine", "Bad_Name!", "monitoring"):
        answer = to_bot.view_submission(form, flows.values(bad), user_id="U0ALICE")
        assert answer.elapsed < flows.ACK_LIMIT_S
        body = answer.json()
        assert body["response_action"] == "errors" and set(body["errors"]) == {"namespace"}, bad
    assert "reserved" in slack.view_errors(form["id"])["namespace"]
    assert slack.views("U0ALICE") and api.leases(live=False) == []  # the modal stays; nothing recorded


def test_over_quota_and_malformed_fields_land_on_their_blocks(to_bot, slack):
    form = flows.open_form(to_bot, slack, "U0ALICE")
    over = to_bot.view_submission(form, flows.values("alice-huge", tier="h100-full", units=5), user_id="U0ALICE")
    assert "uses 0 of its 4 h100-full units" in over.json()["errors"]["units"]
    long = to_bot.view_submission(form, flows.values("alice-long", tier="h100-1g", duration="30d"), user_id="U0ALICE")
    assert "longer than tier h100-1g allows" in long.json()["errors"]["duration"]
    garbled = to_bot.view_submission(form, flows.values("alice-x", duration="soon", reason=""), user_id="U0ALICE")
    assert set(garbled.json()["errors"]) == {"duration", "reason"}
    carol = flows.open_form(to_bot, slack, "U0CAROL")
    no_quota = to_bot.view_submission(carol, flows.values("carol-3g", tier="h100-3g"), user_id="U0CAROL")
    assert no_quota.json()["errors"] == {"tier": "team vision has no quota for tier h100-3g"}


def test_a_duration_without_a_unit_is_refused_not_read_as_seconds(to_bot, slack):
    form = flows.open_form(to_bot, slack, "U0ALICE")
    answer = to_bot.view_submission(form, flows.values("alice-eight", tier="h100-1g", duration="8"), user_id="U0ALICE")
    assert answer.json()["errors"] == {"duration": "'8' has no unit: write a unit, e.g. 8h or 3d"}
    assert api.leases(live=False) == []  # no 8-second lease


def test_someone_in_no_team_is_told_instead_of_getting_a_form(to_bot, slack):
    to_bot.slash_command("/gpu-namespace", user_id="U0ADMIN")
    # The form opens at once (the trigger lasts 3 s); the answer replaces it once teams are read.
    note = flows.modal(slack, "U0ADMIN", "not in any team")
    assert "ref " in str(note["blocks"]) and not note.get("submit")
    assert [b["type"] for b in note["blocks"]] == ["section"]


def test_a_double_submit_records_one_request(to_bot, slack):
    form = flows.open_form(to_bot, slack, "U0ALICE")
    for _ in range(2):
        assert to_bot.view_submission(form, flows.values("alice-once"), user_id="U0ALICE").status == 200
    flows.card(slack, "alice-once")
    assert [lease.namespace for lease in api.leases(live=False)] == ["alice-once"]


def test_a_rate_limited_dm_is_retried_and_arrives_once(to_bot, slack, runtime):
    slack.add_fault("chat.postMessage", status=429, retry_after=1, times=1)
    flows.submit(to_bot, slack, "U0ALICE", "alice-429")
    flows.card(slack, "alice-429")
    waiting = flows.dm_about(slack, "U0ALICE", "waiting for an approver")
    posts = slack.calls("chat.postMessage")
    assert posts[0].status == 429 and posts[0].fault  # the first attempt was refused...
    assert [c.ok for c in posts[1:]] == [True, True]  # ...and retried after Retry-After, once
    assert [m["ts"] for m in slack.messages(dm_channel_id("U0ALICE"))] == [waiting["ts"]]
    assert runtime.queue.failures == []
