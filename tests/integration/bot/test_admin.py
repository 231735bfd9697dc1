"""/gpu-admin capacity | leases | revoke NS | reclaim NS at TIME | drain NODE, for admins only."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from workflows import api

from . import flows
from .conftest import eventually


def admin(to_bot, slack, text: str, fragment: str, *, user: str = "U0ADMIN") -> dict:
    answer = to_bot.slash_command("/gpu-admin", text, user_id=user)
    assert answer.status == 200 and answer.elapsed < flows.ACK_LIMIT_S
    return flows.ephemeral(slack, user, fragment)


@pytest.mark.parametrize("text", ["capacity", "leases", "revoke alice-x", "drain gpu-h100-1g-0"])
def test_non_admins_are_refused_before_anything_happens(to_bot, slack, kube, text):
    refused = admin(to_bot, slack, text, "for gpulease admins only", user="U0APPROVER1")
    assert refused["text"].startswith("⛔") and "ref " in refused["text"]
    assert kube.get("nodes", "gpu-h100-1g-0")["spec"].get("unschedulable") is not True


def test_capacity_leases_reclaim_and_revoke(to_bot, slack, kube):
    flows.active(to_bot, slack, "U0ALICE", "alice-adm")
    pools = admin(to_bot, slack, "capacity", "GPU pools")
    assert "h100-1g" in str(pools["blocks"])
    listed = admin(to_bot, slack, "leases", "Live leases")
    assert "alice-adm" in str(listed["blocks"]) and "<@U0ALICE>" in str(listed["blocks"])

    at = (datetime.now(UTC) + timedelta(hours=6)).replace(microsecond=0)
    admin(to_bot, slack, f"reclaim alice-adm at {at.strftime('%Y-%m-%dT%H:%M:%S')}", "will be reclaimed at")
    flows.dm_about(slack, "U0ALICE", "scheduled alice-adm to be reclaimed")
    admin(to_bot, slack, "reclaim alice-adm at 2001-01-01T00:00", "in the past")
    admin(to_bot, slack, "reclaim alice-adm at someday", "not a time")

    admin(to_bot, slack, "revoke alice-adm over budget", "Revoking `alice-adm`")
    flows.dm_about(slack, "U0ALICE", "Receipt", timeout=20)
    eventually(lambda: kube.get("namespaces", "alice-adm") is None, what="the namespace deleted")
    assert api.leases(live=True) == []


def test_a_reclaim_from_now_counts_from_the_workflows_clock(to_bot, slack, runtime):
    flows.active(to_bot, slack, "U0ALICE", "alice-clock")
    ahead = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)
    runtime.clock = lambda: ahead  # as `gpulease dev` does when time is advanced
    scheduled = admin(to_bot, slack, "reclaim alice-clock at +6h", "will be reclaimed at")
    assert (ahead + timedelta(hours=6)).strftime("%Y-%m-%d %H:%M UTC") in scheduled["text"]


@pytest.mark.parametrize(("at", "reason"), [
    ("0001-01-01T00:00+05:00", "is in the past"),
    ("+99999d", "is too long: at most 3650d"),
])
def test_a_reclaim_time_out_of_range_says_why(to_bot, slack, runtime, at, reason):
    admin(to_bot, slack, f"reclaim alice-range at {at}", reason)


def test_drain_cordons_the_node(to_bot, slack, kube):
    admin(to_bot, slack, "drain gpu-h100-full-0", "Draining `gpu-h100-full-0`")
    eventually(lambda: kube.get("nodes", "gpu-h100-full-0")["spec"].get("unschedulable") is True,
               what="the node cordoned")


def test_a_drain_of_an_unknown_node_tells_the_admin_who_asked(to_bot, slack, runtime):
    asked = admin(to_bot, slack, "drain no-such-node", "Draining `no-such-node`")
    assert "cordoned" not in asked["text"] and "admins are told" in asked["text"]
    told = flows.dm_about(slack, "U0ADMIN", "drain of node no-such-node", timeout=20)
    assert told["text"].startswith("<@U0ADMIN>'s drain of node no-such-node on cluster ")
    assert 'nodes "no-such-node" not found' in told["text"]
    assert "check the name (`gpulease inventory`" in told["text"]
    eventually(lambda: runtime.queue.idle(), what="the queue idle")
    assert not [f for f in runtime.queue.failures if f.startswith("drain_node")]


def test_a_drain_the_cluster_keeps_failing_tells_the_admins_once(to_bot, slack, kube, runtime):
    kube.add_fault(kind="status", status=503, method="GET", path="/api/v1/nodes/gpu-h100-full-0")
    admin(to_bot, slack, "drain gpu-h100-full-0", "Draining `gpu-h100-full-0`")
    told = flows.dm_about(slack, "U0ADMIN", "drain of node gpu-h100-full-0", timeout=30)
    assert "still failing after" in told["text"] and "503" in told["text"]
    assert "may not be cordoned: run `/gpu-admin drain gpu-h100-full-0` again" in told["text"]
    eventually(lambda: runtime.queue.idle(), what="the queue idle", timeout=30)
    assert len([m for m in flows.dms(slack, "U0ADMIN") if "drain of node" in m.get("text", "")]) == 1
    assert kube.get("nodes", "gpu-h100-full-0")["spec"].get("unschedulable") is not True


def test_a_drain_of_a_name_no_node_can_have_is_refused_before_anything_happens(to_bot, slack, runtime):
    admin(to_bot, slack, "drain GPU-Node-0", "'GPU-Node-0' is not a node name")
    assert runtime.queue.done == []


def test_help_for_admins(to_bot, slack):
    usage = admin(to_bot, slack, "", "/gpu-admin capacity")
    assert "drain NODE" in str(usage["blocks"])
    admin(to_bot, slack, "revoke", "`revoke` takes a namespace")


def test_revoking_a_request_not_started_yet_cancels_it(to_bot, slack):
    flows.submit(to_bot, slack, "U0ALICE", "alice-queued")
    flows.card(slack, "alice-queued")
    admin(to_bot, slack, "revoke alice-queued no budget", "was cancelled: it had not started yet; its requester was told")
    flows.dm_about(slack, "U0ALICE", "no budget")
