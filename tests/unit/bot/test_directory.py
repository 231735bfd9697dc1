"""The directory cache: one Slack call per user group and TTL, the last known answer when
Slack fails, and nothing granted for a group never read."""

from __future__ import annotations

from slack_sdk.errors import SlackApiError

from bot.directory import Directory, policy_groups
from config.settings import EXAMPLE_POLICY
from gpulease.wiring import load_checked_policy


class FakeSlack:
    """Answers usergroups.users.list and users.info from dicts; counts calls; can fail."""

    def __init__(self) -> None:
        self.groups = {"S0GPUAPPROVERS": ["U0APPROVER2"], "S0MLRESEARCH": ["U0ALICE"]}
        self.calls = 0
        self.failing = False

    def _maybe_fail(self) -> None:
        self.calls += 1
        if self.failing:
            raise SlackApiError("ratelimited", {"ok": False, "error": "ratelimited"})

    def usergroups_users_list(self, *, usergroup: str) -> dict:
        self._maybe_fail()
        return {"ok": True, "users": self.groups.get(usergroup, [])}

    def users_info(self, *, user: str) -> dict:
        self._maybe_fail()
        return {"ok": True, "user": {"profile": {"email": f"{user.lower()}@example.com"}}}


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_policy_names_its_groups():
    assert policy_groups(load_checked_policy(EXAMPLE_POLICY)) == {"S0GPUAPPROVERS", "S0MLRESEARCH"}


def test_groups_are_cached_for_their_ttl():
    slack, clock = FakeSlack(), Clock()
    directory = Directory(slack, ["S0GPUAPPROVERS", "S0MLRESEARCH"], clock=clock, group_ttl=60)
    assert directory.groups_of("U0APPROVER2") == {"S0GPUAPPROVERS"}
    assert directory.groups_of("U0ALICE") == {"S0MLRESEARCH"}
    assert slack.calls == 2  # one per group, shared by every user
    slack.groups["S0GPUAPPROVERS"].append("U0ALICE")
    clock.now = 59
    assert directory.groups_of("U0ALICE") == {"S0MLRESEARCH"}
    clock.now = 61
    assert directory.groups_of("U0ALICE") == {"S0MLRESEARCH", "S0GPUAPPROVERS"}


def test_when_slack_fails_the_last_answer_is_used_and_unknown_groups_grant_nothing():
    slack, clock = FakeSlack(), Clock()
    directory = Directory(slack, ["S0GPUAPPROVERS"], clock=clock, group_ttl=60)
    assert directory.groups_of("U0APPROVER2") == {"S0GPUAPPROVERS"}
    slack.failing, clock.now = True, 120
    assert directory.groups_of("U0APPROVER2") == {"S0GPUAPPROVERS"}
    fresh = Directory(slack, ["S0GPUAPPROVERS"], clock=clock)
    assert fresh.groups_of("U0APPROVER2") == frozenset()
    assert fresh.email_of("U0ALICE") is None


def test_emails_come_from_users_info():
    directory = Directory(FakeSlack(), [])
    assert directory.email_of("U0ALICE") == "u0alice@example.com"
