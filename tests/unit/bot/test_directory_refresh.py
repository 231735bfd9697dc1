"""The directory before an ack: the last answer at once and a refresh behind it, groups never
read looked up side by side within a bound, and the last answer standing in for Slack for at
most an hour, after which refusals that hang on a group say Slack did not answer."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.deps import BotDeps
from bot.directory import Directory, DirectoryUnavailable, policy_groups
from config.settings import EXAMPLE_POLICY
from gpulease.wiring import load_checked_policy
from leases.errors import DomainError, NotAuthorised
from tests.integration.sandbox.waiting import wait_until as eventually

POLICY = load_checked_policy(EXAMPLE_POLICY)
GROUPS = policy_groups(POLICY)  # S0GPUAPPROVERS, S0MLRESEARCH


class FakeSlack:
    """Answers usergroups.users.list from a dict; can fail, or hold every call until released."""

    def __init__(self) -> None:
        self.groups = {"S0GPUAPPROVERS": ["U0APPROVER2"], "S0MLRESEARCH": ["U0ALICE", "U0CAROL"]}
        self.calls = 0
        self.failing = False
        self.released = threading.Event()
        self.released.set()

    def usergroups_users_list(self, *, usergroup: str) -> dict[str, Any]:
        self.calls += 1
        assert self.released.wait(5), "a test forgot to release the fake"
        if self.failing:
            raise SlackApiError("ratelimited", {"ok": False, "error": "ratelimited"})
        if usergroup not in self.groups:
            raise SlackApiError("no_such_subteam", {"ok": False, "error": "no_such_subteam"})
        return {"ok": True, "users": list(self.groups[usergroup])}


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def deps_with(directory: Directory) -> BotDeps:
    return BotDeps(policy=POLICY, directory=directory, quick_client=WebClient(token="xoxb-unused"))


def test_a_check_before_an_ack_gets_the_expired_answer_at_once_and_a_refresh_behind_it():
    slack, clock = FakeSlack(), Clock()
    directory = Directory(slack, GROUPS, clock=clock, group_ttl=60)
    assert directory.groups_of("U0CAROL") == {"S0MLRESEARCH"}
    slack.groups["S0GPUAPPROVERS"].append("U0CAROL")
    slack.released.clear()  # Slack takes its time (e.g. a 429's Retry-After)
    clock.now = 61
    started = time.monotonic()
    assert directory.membership("U0CAROL", wait=False).groups == {"S0MLRESEARCH"}  # the last answer
    assert time.monotonic() - started < 0.5
    slack.released.set()
    eventually(lambda: directory.groups_of("U0CAROL", wait=False) == {"S0MLRESEARCH", "S0GPUAPPROVERS"})
    assert slack.calls == 4  # two reads, then one refresh per group, however many checks asked


def test_groups_never_read_are_looked_up_side_by_side_within_the_bound():
    slow = FakeSlack()
    slow.released.clear()
    directory = Directory(FakeSlack(), GROUPS, lookup_client=slow, lookup_budget=0.2)  # type: ignore[arg-type]
    started = time.monotonic()
    membership = directory.membership("U0ALICE", wait=False)
    assert time.monotonic() - started < 1.0
    assert membership.groups == frozenset() and membership.unknown == GROUPS
    slow.released.set()  # the lookups finish after the check gave up, and fill the cache
    eventually(lambda: directory.membership("U0ALICE", wait=False).groups == {"S0MLRESEARCH"})


def test_the_last_answer_stands_in_for_slack_for_at_most_the_stale_limit():
    slack, clock = FakeSlack(), Clock()
    directory = Directory(slack, GROUPS, clock=clock, group_ttl=300, stale_limit=3600)
    deps = deps_with(directory)
    assert directory.groups_of("U0APPROVER2") == {"S0GPUAPPROVERS"}
    slack.failing = True
    clock.now = 3599
    deps.require_approver(deps.actor("U0APPROVER2"), tier="h100-3g", requester="U0ALICE")  # last answer
    clock.now = 3601
    actor = deps.actor("U0APPROVER2")
    assert actor.groups == frozenset() and actor.unknown == GROUPS
    with pytest.raises(DirectoryUnavailable) as refused:
        deps.require_approver(actor, tier="h100-3g", requester="U0ALICE")
    assert refused.value.message.startswith("Slack did not tell me who is in the user group S0GPUAPPROVERS")
    assert "whether you may decide requests for tier h100-3g" in refused.value.message
    # An approver by user id does not depend on Slack, nor does a tier whose approvers are ids only.
    deps.require_approver(deps.actor("U0APPROVER1"), tier="h100-3g", requester="U0ALICE")
    with pytest.raises(NotAuthorised):
        deps.require_approver(deps.actor("U0BOB"), tier="h100-full", requester="U0ALICE")


def test_a_group_slack_does_not_know_has_no_members_and_is_not_unknown():
    directory = Directory(FakeSlack(), ["S0GONE"])
    assert directory.members("S0GONE") == frozenset()
    assert directory.membership("U0ALICE").unknown == frozenset()


def test_the_team_of_a_request_is_checked_against_what_slack_could_say():
    slack, clock = FakeSlack(), Clock()
    deps = deps_with(Directory(slack, GROUPS, clock=clock))
    carol = deps.actor("U0CAROL")  # vision by id, ml-research through the group
    assert deps.request_team(carol, chosen="ml-research") == "ml-research"
    with pytest.raises(DomainError, match="several teams") as several:
        deps.request_team(carol, chosen="")  # submitted before the form showed the teams
    assert several.value.field == "team"
    assert deps.request_team(deps.actor("U0BOB"), chosen="") == "ml-research"

    slack.failing, clock.now = True, 7200
    carol = deps.actor("U0CAROL")
    assert deps.request_team(carol, chosen="vision") == "vision"  # by id: Slack is not needed
    with pytest.raises(DirectoryUnavailable) as unknown:
        deps.request_team(carol, chosen="ml-research")
    assert unknown.value.field == "team" and "S0MLRESEARCH" in unknown.value.message
    with pytest.raises(DirectoryUnavailable, match="which teams you are in"):
        deps.teams(deps.actor("U0DAVE"))
    slack.failing = False
    with pytest.raises(DomainError, match="not in any team"):
        deps.teams(deps.actor("U0DAVE"))


def test_concurrent_reads_of_a_cold_group_make_one_call_to_slack() -> None:
    slack = FakeSlack()
    slack.released.clear()  # every call waits until the readers have all asked
    directory = Directory(slack, GROUPS, clock=Clock())  # type: ignore[arg-type]
    answers: list[frozenset[str] | None] = []
    asking: list[int] = []

    def read() -> None:
        asking.append(1)
        answers.append(directory.members("S0MLRESEARCH"))

    readers = [threading.Thread(target=read) for _ in range(5)]
    for reader in readers:
        reader.start()
    eventually(lambda: slack.calls >= 1 and len(asking) == 5)  # all five asked while Slack holds the call
    slack.released.set()
    for reader in readers:
        reader.join(5)
    assert slack.calls == 1
    assert answers == [frozenset({"U0ALICE", "U0CAROL"})] * 5
