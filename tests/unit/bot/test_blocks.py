"""Block Kit builders: within Slack's limits, and showing what each audience needs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import yaml

from bot import ids
from bot.blocks import cards, kit, notices
from bot.blocks.escaping import escape
from bot.blocks.forms import RADIO_MAX, request_modal
from bot.blocks.home import home_view
from bot.blocks.replies import capacity, usage
from config.policy import parse_policy
from config.settings import EXAMPLE_POLICY
from gpulease.wiring import load_checked_policy
from leases.ports import Notice
from leases.reservations import PoolUsage
from workflows.api import LeaseSummary

POLICY = load_checked_policy(EXAMPLE_POLICY)
LEASE = {"id": "L1", "namespace": "alice-nb", "requester": "U0ALICE", "team": "ml-research", "tier": "h100-3g",
         "tier_display": "3/7 of an H100, 40 GB, isolated", "units": 1, "duration": "2d", "reason": "fine-tuning",
         "state": "pending_approval", "expires_at": None, "extensions": 0}


def action_ids(message: dict) -> list[str]:
    return [e["action_id"] for b in message["blocks"] if b["type"] == "actions" for e in b["elements"]]


def test_the_request_modal_fits_slack():
    view = request_modal(POLICY, list(POLICY.teams))
    assert len(view["title"]["text"]) <= 24 and len(view["blocks"]) <= 100 and view["submit"]
    inputs = [b["block_id"] for b in view["blocks"] if b["type"] == "input"]
    assert inputs == [ids.NAMESPACE, ids.TEAM, ids.TIER, ids.UNITS, ids.DURATION, ids.REASON]
    tier = next(b for b in view["blocks"] if b.get("block_id") == ids.TIER)
    assert tier["element"]["type"] == "radio_buttons"
    assert all(len(o["text"]["text"]) <= 75 and len(o["description"]["text"]) <= 75
               for o in tier["element"]["options"])


def test_many_tiers_use_a_select():
    data = yaml.safe_load(EXAMPLE_POLICY.read_text())
    base = data["tiers"][0]
    data["tiers"] = [{**base, "name": f"h100-1g-{n}", "fallback": []} for n in range(RADIO_MAX + 1)]
    for team in data["teams"]:
        team["quota"]["tiers"] = {}
    data["approvals"]["auto_approve"] = []
    policy = parse_policy(data)
    tier = next(b for b in request_modal(policy, list(policy.teams))["blocks"] if b.get("block_id") == ids.TIER)
    assert tier["element"]["type"] == "static_select" and len(tier["element"]["options"]) == RADIO_MAX + 1


def test_the_approval_card_shows_what_approvers_decide_on():
    notice = Notice("approval.requested", "<@U0ALICE> asks", LEASE,
                    {"team_used": 3, "team_quota": 4, "pool_free": 5, "pool_capacity": 16}, ("approve", "deny"))
    message = cards.approval_card(notice)
    text = str(message["blocks"])
    for shown in ("<@U0ALICE>", "alice-nb", "3/7 of an H100", "1 × 2d", "fine-tuning", "3 of 4 h100-3g",
                  "5 of 16 units free"):
        assert shown in text
    assert action_ids(message) == [ids.APPROVE, ids.DENY]


def test_a_decided_card_has_no_buttons_and_says_who():
    notice = Notice("approval.denied", "Denied", LEASE,
                    {"decided_by": "U0APPROVER1", "reason": "too big", "outcome": "denied"})
    message = cards.decided_card(notice)
    assert action_ids(message) == []
    assert "*Denied* by <@U0APPROVER1>: too big" in str(message["blocks"])


def test_requester_messages_carry_the_notices_buttons():
    lease = {**LEASE, "state": "active", "expires_at": "2026-03-04T09:00:00+00:00", "extensions": 1}
    active = notices.requester_message(Notice("lease.active", "ready", lease, {"kubectl": "kubectl get pods"},
                                              ("extend", "release")))
    assert action_ids(active) == [ids.EXTEND, ids.RELEASE]
    assert '"x":1' in active["blocks"][-1]["elements"][0]["value"]  # the extension count it was shown at
    assert "```kubectl get pods```" in str(active["blocks"])
    fallback = notices.requester_message(Notice("lease.fallback_offered", "full", lease,
                                                {"tiers": ["h100-shared", "h100-full"]}, ("accept_fallback", "cancel")))
    assert action_ids(fallback) == [f"{ids.ACCEPT_FALLBACK}:0", f"{ids.ACCEPT_FALLBACK}:1", ids.CANCEL]
    receipt = notices.requester_message(Notice("lease.reclaimed", "gone", lease,
                                               {"gpu_hours": 12.5, "start": lease["expires_at"],
                                                "end": lease["expires_at"], "extensions": 1}))
    assert "12.5" in str(receipt["blocks"]) and action_ids(receipt) == []
    unknown = notices.requester_message(Notice("lease.reclaimed", "gone", lease,
                                               {"gpu_hours": None, "hours": 30.0, "extensions": 0,
                                                "gpu_hours_unknown": "tier h100-3g is no longer in the policy"}))
    fields = [f["text"] for b in unknown["blocks"] for f in b.get("fields") or []]
    assert fields[0] == "*Hours reserved*\n30.0 (GPU-hours unknown: the tier left the policy)"


def test_home_shows_time_left_and_the_right_buttons():
    now = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    running = LeaseSummary("L1", "alice-nb", "sandbox", "U0ALICE", "ml-research", "h100-1g", 1, "active",
                           now + timedelta(days=2, hours=3), timedelta(days=2, hours=3), ())
    waiting = LeaseSummary("L2", "alice-big", "sandbox", "U0ALICE", "ml-research", "h100-3g", 1,
                           "pending_approval", None, None, ())
    view = home_view([running, waiting], extensions={"L1": 0}, notice="done")
    assert view["type"] == "home" and len(view["blocks"]) <= 100
    text = str(view["blocks"])
    assert "2d 3h left" in text and "done" in text
    assert action_ids(view) == [ids.HOME_REQUEST, ids.EXTEND, ids.RELEASE, ids.CANCEL]
    many = home_view([running] * 60, extensions={})
    assert len(many["blocks"]) <= 100 and "more" in str(many["blocks"][-1])


def test_times_people_read():
    assert kit.time_left(timedelta(days=2, hours=4, minutes=5)) == "2d 4h"
    assert kit.time_left(timedelta(hours=3, minutes=20)) == "3h 20m"
    assert kit.time_left(timedelta(minutes=12, seconds=30)) == "12m"
    assert kit.time_left(timedelta(seconds=-5)) == "expired"
    assert kit.time_left(None) == "–"
    assert kit.when("2026-03-04T09:00:00+00:00") == "<!date^1772614800^{date_short_pretty} {time}|2026-03-04 09:00 UTC>"
    assert kit.section("x" * 5000)["text"]["text"].endswith("…")


def test_a_long_lease_list_is_split_over_sections_and_counts_the_rest():
    from bot.blocks.replies import lease_list

    now = datetime(2026, 12, 2, tzinfo=UTC)
    leases = [
        LeaseSummary(f"L{i}", f"team-namespace-with-a-long-name-{i:03d}", "sandbox", "U0ALICE", "ml-research",
                     "h100-1g", 1, "active", now, timedelta(hours=5), ())
        for i in range(45)
    ]
    reply = lease_list(leases, title="Leases", owner=True)
    shown = "\n".join(b["text"]["text"] for b in reply["blocks"] if b["type"] == "section")
    assert all(len(b["text"]["text"]) <= kit.SECTION_MAX for b in reply["blocks"] if b["type"] == "section")
    assert "…" not in shown  # no line cut
    assert [f"-{i:03d}`" in shown for i in range(45)] == [True] * 40 + [False] * 5
    assert reply["blocks"][-1] == kit.context("…and 5 more")


TYPED = "<!channel> urgent & <https://evil.example|approve here>"
SHOWN = "&lt;!channel&gt; urgent &amp; &lt;https://evil.example|approve here&gt;"


def test_what_users_typed_shows_as_typed_and_the_bots_mentions_stay():
    assert escape("a < b && c > d") == "a &lt; b &amp;&amp; c &gt; d"
    lease = {**LEASE, "reason": TYPED}
    card = cards.approval_card(Notice("approval.requested", f"<@U0ALICE> asks for 1× h100-3g as alice-nb: {TYPED}",
                                      lease, {}, ("approve", "deny")))
    denied = cards.decided_card(Notice("approval.denied", f"Denied by <@U0APPROVER1>: {TYPED}", lease,
                                       {"decided_by": "U0APPROVER1", "reason": TYPED, "outcome": "denied"}))
    told = notices.requester_message(Notice("lease.denied", f"<@U0APPROVER1> denied alice-nb: {TYPED}", lease,
                                            {"decided_by": "U0APPROVER1", "reason": TYPED}))
    for message in (card, denied, told):
        shown = f"{message['text']} {message['blocks']}"
        assert "<!channel>" not in shown and "<https://" not in shown and SHOWN in shown
    assert card["text"] == f"<@U0ALICE> asks for 1× h100-3g as alice-nb: {SHOWN}"
    assert f"*Denied* by <@U0APPROVER1>: {SHOWN}" in str(denied["blocks"])
    assert told["text"] == f"<@U0APPROVER1> denied alice-nb: {SHOWN}"


def test_typed_markup_characters_alone_leave_the_bots_mentions_alone():
    lease = {**LEASE, "reason": "<"}
    told = notices.requester_message(Notice("lease.denied", "<@U0APPROVER1> denied alice-nb: <", lease,
                                            {"decided_by": "U0APPROVER1", "reason": "&>"}))
    assert told["text"] == "<@U0APPROVER1> denied alice-nb: &lt;"
    both = notices.requester_message(Notice("lease.denied", "<@U0APPROVER1> denied alice-nb: &> <@U0X>", lease,
                                            {"decided_by": "U0APPROVER1", "reason": "&> <@U0X>"}))
    assert both["text"] == "<@U0APPROVER1> denied alice-nb: &amp;&gt; &lt;@U0X&gt;"


def test_a_command_quoted_back_in_a_problem_is_escaped():
    reply = usage("*/gpu-namespace list*", "unknown command `<!here>`")
    assert reply["text"] == "unknown command `&lt;!here&gt;`" and "<!here>" not in str(reply["blocks"])


def test_capacity_of_many_pools_is_split_into_whole_tables_and_counts_the_rest():
    def pools(n: int) -> list[PoolUsage]:
        return [PoolUsage(cluster=f"gpu-cluster-{i // 7}", tier=f"tier-{i % 7}", capacity=16, reserved=8)
                for i in range(n)]

    reply = capacity(pools(56))
    tables = [b["text"]["text"] for b in reply["blocks"] if b["type"] == "section"]
    assert len(tables) > 1 and all(len(t) <= kit.SECTION_MAX for t in tables)
    assert all(t.startswith("```cluster") and t.endswith("```") and "…" not in t for t in tables)
    assert sum(t.count("\n") for t in tables) == 56  # each table: the column titles, then its rows
    huge = capacity(pools(5000))
    assert len(huge["blocks"]) <= kit.MESSAGE_BLOCKS_MAX
    shown = sum(b["text"]["text"].count("\n") for b in huge["blocks"] if b["type"] == "section")
    assert huge["blocks"][-1] == kit.context(f"…and {5000 - shown} more") and shown > 2000
