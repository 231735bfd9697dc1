"""The demo's story, step by step, acting only as Slack users and cluster users would.

Every step says what it expects and checks it (polling with a bound); a step whose outcome
does not appear raises StepFailed naming it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException
from sqlmodel import col, func, select

from gpulease.embedded import Embedded
from leases.inventory import TIER_LABEL
from leases.models import OutboxMessage
from leases.reservations import pool_usage
from leases.store import session_scope
from sandbox.slack import dm_channel_id, payloads
from workflows import api

APPROVALS = "C0APPROVALS"
NAMES = {"U0ALICE": "Alice", "U0BOB": "Bob", "U0CAROL": "Carol", "U0APPROVER1": "Priya (approver)",
         "U0APPROVER2": "Omar (approver)", "U0ADMIN": "Admin"}


class StepFailed(Exception):
    """An expected outcome did not happen."""

    def __init__(self, step: str, detail: str) -> None:
        super().__init__(f"step '{step}': {detail}")
        self.step = step
        self.detail = detail


@dataclass
class Event:
    at: datetime
    step: str
    text: str


@dataclass
class Snapshot:
    at: datetime
    label: str
    pools: dict[str, tuple[int, int]]  # tier -> (capacity, reserved)


@dataclass
class Story:
    env: Embedded
    events: list[Event] = field(default_factory=list)
    snapshots: list[Snapshot] = field(default_factory=list)
    step: str = ""

    # -- recording ---------------------------------------------------------------------
    def say(self, text: str) -> None:
        self.events.append(Event(self.env.clock(), self.step, text))

    def snapshot(self, label: str) -> None:
        with session_scope(self.env.runtime.engine) as session:
            pools = {p.tier: (p.capacity, p.reserved) for p in pool_usage(session)}
        self.snapshots.append(Snapshot(self.env.clock(), label, pools))

    def wait(self, predicate: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                raise StepFailed(self.step, f"timed out after {timeout:.0f}s waiting for {what}")
            time.sleep(0.05)

    # -- what users do in Slack ---------------------------------------------------------
    def request(self, user: str, namespace: str, *, tier: str, units: int, duration: str, reason: str) -> None:
        env = self.env
        answer = env.to_bot.slash_command("/gpu-namespace", user_id=user)
        if answer.status != 200:
            raise StepFailed(self.step, f"/gpu-namespace answered HTTP {answer.status}")
        form = self.wait(lambda: (env.slack.views(user) or [None])[-1], f"the request form for {user}")
        values = {
            "namespace": {"value": namespace},
            "tier": {"value": payloads.radio_buttons(tier)},
            "units": {"value": payloads.number_input(units)},
            "duration": {"value": duration},
            "reason": {"value": reason},
        }
        answer = env.to_bot.view_submission(form, values, user_id=user)
        body = answer.json() or {}
        if body.get("response_action") == "errors":
            raise StepFailed(self.step, f"the form refused {namespace}: {body.get('errors')}")
        self.say(f"{NAMES[user]} types /gpu-namespace and asks for {namespace}: {units}× {tier} for {duration} "
                 f"(acknowledged in {answer.elapsed * 1000:.0f} ms)")

    def card(self, namespace: str) -> dict:
        return self.wait(lambda: next((m for m in self.env.slack.messages(APPROVALS)
                                       if f"as {namespace} " in m.get("text", "")), None),
                         f"the approval card for {namespace}")

    def click(self, user: str, action: str, *, channel: str, message: dict) -> None:
        answer = self.env.to_bot.block_action(action, user_id=user, channel=channel, message=message)
        if answer.status != 200:
            raise StepFailed(self.step, f"clicking {action} answered HTTP {answer.status}")

    def dms(self, user: str) -> list[dict]:
        slack, channel = self.env.slack, dm_channel_id(user)
        found: dict[str, dict] = {}
        for parent in slack.messages(channel):
            found.setdefault(parent["ts"], parent)
            for reply in slack.messages(channel, parent["ts"]):
                found.setdefault(reply["ts"], reply)
        return sorted(found.values(), key=lambda m: float(m["ts"]))

    def dm(self, user: str, fragment: str, timeout: float = 30.0) -> dict:
        return self.wait(lambda: next((m for m in self.dms(user) if fragment in m.get("text", "")), None),
                         f"a DM to {NAMES[user]} saying '{fragment}'", timeout)

    def state(self, namespace: str) -> str:
        found = [lease for lease in api.leases(live=False) if lease.namespace == namespace]
        return found[0].state if found else "none"

    def expect_state(self, namespace: str, state: str, timeout: float = 30.0) -> None:
        self.wait(lambda: self.state(namespace) == state, f"{namespace} to be {state}", timeout)


def run(story: Story) -> None:
    """Play the whole scenario; raises StepFailed at the first step that does not happen."""
    env = story.env
    core = k8s.CoreV1Api(env.runtime.kube("sandbox"))

    def step(name: str) -> None:
        story.step = name

    step("auto-approved request")
    story.request("U0ALICE", "alice-notebook", tier="h100-1g", units=1, duration="8h",
                  reason="notebook for a LoRA fine-tune")
    ready = story.dm("U0ALICE", "alice-notebook is ready")
    story.say("auto-approved by rule small-and-short; namespace, quota, RBAC, network policy and pinning created")
    story.snapshot("alice-notebook active")

    step("approved by an approver's click")
    story.request("U0BOB", "bob-training", tier="h100-3g", units=1, duration="2d", reason="7B model training run")
    card = story.card("bob-training")
    story.say("the approval card shows the team's quota use and the pool's free units")
    story.click("U0APPROVER1", "lease.approve", channel=APPROVALS, message=card)
    story.dm("U0BOB", "bob-training is ready")
    story.say("Priya clicks Approve; the card is updated in place and Bob's namespace is created")
    story.snapshot("bob-training active")

    step("denied with a reason")
    story.request("U0CAROL", "carol-eval", tier="l40s-shared", units=2, duration="3d", reason="eval sweep")
    card = story.card("carol-eval")
    story.click("U0APPROVER1", "lease.deny", channel=APPROVALS, message=card)
    modal = story.wait(lambda: (env.slack.views("U0APPROVER1") or [None])[-1], "the deny reason modal")
    env.to_bot.view_submission(modal, {"reason": {"value": "use h100-1g slices for evals"}}, user_id="U0APPROVER1")
    story.dm("U0CAROL", "denied carol-eval")
    story.expect_state("carol-eval", "denied")
    story.say("Priya clicks Deny and gives a reason; Carol is told why")

    step("a pod with unchanged YAML lands on its tier")
    pod = _gpu_pod("train-0")
    core.create_namespaced_pod("alice-notebook", pod)
    node = story.wait(lambda: core.read_namespaced_pod("train-0", "alice-notebook").spec.node_name,
                      "the pod to be scheduled")
    tier = core.read_node(node).metadata.labels.get(TIER_LABEL)
    if tier != "h100-1g":
        raise StepFailed(story.step, f"the pod landed on {node} of tier {tier}, not h100-1g")
    story.say(f"Alice's pod asks for nvidia.com/gpu: 1 and lands on {node} (tier h100-1g)")
    try:
        core.create_namespaced_pod("alice-notebook", _gpu_pod("train-1"))
    except ApiException as exc:
        if exc.status != 403 or "exceeded quota" not in (exc.body or ""):
            raise StepFailed(story.step, f"the second pod was refused, but not by the quota: {exc.body}") from None
        story.say("a second GPU pod is refused: exceeded quota requests.nvidia.com/gpu (1 leased)")
    else:
        raise StepFailed(story.step, "a pod beyond the lease's quota was admitted")

    step("a shortage moves a node between tiers")
    story.request("U0BOB", "bob-shared", tier="h100-shared", units=1, duration="4h", reason="quick debugging")
    story.dm("U0BOB", "bob-shared is ready", timeout=60)
    moved = story.wait(lambda: _tier_nodes(core, "h100-shared"), "a node serving h100-shared")
    story.say(f"no node served h100-shared: {moved[0]} (idle) was reconfigured through the GPU Operator "
              "(mig.config all-disabled, time-slicing 4 replicas) and Bob's lease was placed on it")
    story.snapshot("node moved to h100-shared")

    step("a request waits for capacity")
    story.request("U0ALICE", "alice-big", tier="h100-full", units=2, duration="1d", reason="multi-GPU training")
    card = story.card("alice-big")
    story.click("U0APPROVER2", "lease.approve", channel=APPROVALS, message=card)
    story.expect_state("alice-big", "waitlisted")
    story.dm("U0ALICE", "alice-big")
    story.say("Omar approves 2 whole H100s, but every H100 node is busy or held: alice-big is waitlisted")
    story.snapshot("alice-big waitlisted")

    step("a lease expires, is reclaimed, and the waitlisted request is placed")
    env.clock.advance(timedelta(hours=4, minutes=1))
    env.sweep()
    story.say("4 hours later the minute sweep finds bob-shared expired")
    story.expect_state("bob-shared", "reclaimed", timeout=60)
    story.dm("U0BOB", "Receipt", timeout=30)
    story.say("bob-shared is reclaimed: namespace deleted, capacity returned, GPU-hours receipt sent")
    story.expect_state("alice-big", "active", timeout=90)
    story.dm("U0ALICE", "alice-big is ready", timeout=30)
    story.say("the freed node moves back to h100-full and alice-big is placed from the waitlist")
    story.snapshot("waitlist placed")

    step("an expiry warning is extended from its button")
    env.clock.advance(timedelta(hours=3))
    env.sweep()
    warning = story.dm("U0ALICE", "alice-notebook expires in")
    before = api.lease_by_namespace("alice-notebook").expires_at
    story.say("Alice gets an expiry warning for alice-notebook with an Extend button")
    story.click("U0ALICE", "lease.extend", channel=dm_channel_id("U0ALICE"), message=warning)
    story.wait(lambda: api.lease_by_namespace("alice-notebook").expires_at > before, "the lease to be extended")
    after = api.lease_by_namespace("alice-notebook").expires_at
    story.say(f"she clicks Extend: alice-notebook now runs until {after:%Y-%m-%d %H:%M} UTC")
    story.snapshot("final")
    story.wait(lambda: _unsent(env) == 0, "every notification to be delivered")
    del ready


def _unsent(env: Embedded) -> int:
    with session_scope(env.runtime.engine) as session:
        return session.exec(
            select(func.count()).select_from(OutboxMessage).where(col(OutboxMessage.sent_at).is_(None))
        ).one()


def _gpu_pod(name: str) -> dict:
    return {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
        "spec": {"containers": [{"name": "train", "image": "nvcr.io/nvidia/pytorch:24.05-py3",
                                 "resources": {"limits": {"nvidia.com/gpu": "1"}}}]},
    }


def _tier_nodes(core: k8s.CoreV1Api, tier: str) -> list[str]:
    nodes = core.list_node(label_selector=f"{TIER_LABEL}={tier}").items
    return [n.metadata.name for n in nodes if not n.spec.unschedulable]
