"""Listeners ack before any slow work: with every Kubernetes API call delayed by 5 s (and
a workflow busy placing a lease against it), commands and buttons are still acked within
Slack's 3 s."""

from __future__ import annotations

from . import flows
from .conftest import eventually


def test_commands_and_buttons_ack_fast_while_kubernetes_is_slow(to_bot, slack, kube, runtime):
    kube.add_fault("delay", seconds=5)
    flows.submit(to_bot, slack, "U0ALICE", "alice-slow", tier="h100-1g", duration="8h")  # auto-approved
    eventually(lambda: kube.requests(), what="the worker to be waiting on Kubernetes")
    flows.submit(to_bot, slack, "U0BOB", "bob-slow", tier="h100-3g")  # needs approval
    card = flows.card(slack, "bob-slow")

    answers = [
        to_bot.slash_command("/gpu-namespace", "list", user_id="U0ALICE"),
        to_bot.slash_command("/gpu-namespace", "status alice-slow", user_id="U0ALICE"),
        to_bot.slash_command("/gpu-admin", "capacity", user_id="U0ADMIN"),
        to_bot.block_action("lease.approve", user_id="U0APPROVER1", channel=flows.APPROVALS, message=card),
        to_bot.block_action("lease.deny", user_id="U0APPROVER2", channel=flows.APPROVALS, message=card),
        to_bot.app_home_opened("U0ALICE"),
    ]
    assert [a.status for a in answers] == [200] * len(answers)
    assert max(a.elapsed for a in answers) < flows.ACK_LIMIT_S
    # Acks did not wait for the cluster, and the work behind them still happened.
    eventually(lambda: "Approved" in str(flows.current(slack, card)["blocks"]), what="the approval")
    flows.modal(slack, "U0APPROVER2", "already approved by <@U0APPROVER1>")  # in the Deny modal, opened before the ack
    assert not runtime.queue.idle()  # the workflow is still waiting on the slow cluster...
    assert all(r.status is None or r.fault == "delay" for r in kube.requests())  # ...delayed, every call
