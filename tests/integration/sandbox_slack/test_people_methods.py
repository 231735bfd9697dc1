"""auth.test, users.*, usergroups.users.list and the directory behind them, default or
loaded from a file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from sandbox.slack import DEFAULT_TOKEN, Directory, SlackSandbox


def error_of(call) -> str:
    """Run a call expected to fail and return Slack's error name."""
    with pytest.raises(SlackApiError) as caught:
        call()
    return caught.value.response["error"]


def test_auth_test_names_the_bot_and_team(client: WebClient) -> None:
    answer = client.auth_test()
    assert (answer["bot_id"], answer["user_id"], answer["team_id"]) == ("B0GPULEASE", "U0GPULEASE", "T0SANDBOX")


def test_users_info_and_lookup_by_email(client: WebClient) -> None:
    alice = client.users_info(user="U0ALICE")["user"]
    approver = client.users_lookupByEmail(email="Approver1@example.com")["user"]

    assert (alice["name"], alice["profile"]["email"], alice["is_bot"]) == ("alice", "alice@example.com", False)
    assert approver["id"] == "U0APPROVER1"
    assert error_of(lambda: client.users_info(user="U0NOBODY")) == "user_not_found"
    assert error_of(lambda: client.users_lookupByEmail(email="nobody@example.com")) == "users_not_found"


def test_default_usergroups_match_the_example_policy(client: WebClient) -> None:
    assert client.usergroups_users_list(usergroup="S0MLRESEARCH")["users"] == ["U0ALICE", "U0BOB"]
    assert client.usergroups_users_list(usergroup="S0GPUAPPROVERS")["users"] == ["U0APPROVER2"]
    assert error_of(lambda: client.usergroups_users_list(usergroup="S0NOPE")) == "no_such_subteam"


def test_directory_changes_from_python_apply_at_once(client: WebClient, slack: SlackSandbox) -> None:
    slack.directory.add_user("U0DAVE", "dave")
    slack.directory.add_usergroup("S0GPUAPPROVERS", "gpu-approvers", ["U0APPROVER2", "U0DAVE"])

    assert client.users_lookupByEmail(email="dave@example.com")["user"]["id"] == "U0DAVE"
    assert "U0DAVE" in client.usergroups_users_list(usergroup="S0GPUAPPROVERS")["users"]


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_directory_loads_from_yaml_or_json(tmp_path: Path, suffix: str) -> None:
    data = {
        "team": {"id": "T0ACME", "domain": "acme", "name": "Acme"},
        "users": [{"id": "U0ZED", "name": "zed", "real_name": "Zed Zero", "email": "zed@acme.test"}],
        "usergroups": [{"id": "S0OPS", "handle": "ops", "users": ["U0ZED"]}],
        "channels": [{"id": "C0OPS", "name": "ops"}],
    }
    path = tmp_path / f"directory{suffix}"
    path.write_text(json.dumps(data))  # JSON is valid YAML too

    with SlackSandbox(directory=Directory.from_file(path)) as slack:
        client = WebClient(token=DEFAULT_TOKEN, base_url=slack.url)
        assert client.auth_test()["team_id"] == "T0ACME"
        assert client.users_lookupByEmail(email="zed@acme.test")["user"]["real_name"] == "Zed Zero"
        assert client.usergroups_users_list(usergroup="S0OPS")["users"] == ["U0ZED"]
        assert client.chat_postMessage(channel="#ops", text="hi")["channel"] == "C0OPS"
        assert error_of(lambda: client.users_info(user="U0ALICE")) == "user_not_found"
