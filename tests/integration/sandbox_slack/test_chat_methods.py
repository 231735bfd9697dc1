"""chat.* and conversations.* through the real slack_sdk WebClient: success payloads,
threads, updates, DMs and the refusals Slack gives."""

from __future__ import annotations

import json
import urllib.request

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from sandbox.slack import DEFAULT_TOKEN, Bot, SlackSandbox


def refusal(call) -> dict:
    """Run a call expected to fail and return Slack's error body."""
    with pytest.raises(SlackApiError) as caught:
        call()
    return caught.value.response.data


def test_post_message_returns_channel_ts_and_the_stored_message(client: WebClient, slack: SlackSandbox) -> None:
    first = client.chat_postMessage(channel="C0APPROVALS", text="request from alice")
    second = client.chat_postMessage(channel="#gpu-approvals", text="second")

    assert first["channel"] == second["channel"] == "C0APPROVALS"
    assert float(second["ts"]) > float(first["ts"])
    assert first["message"]["bot_id"] == "B0GPULEASE" and first["message"]["ts"] == first["ts"]
    assert [m["text"] for m in slack.messages("C0APPROVALS")] == ["request from alice", "second"]


def test_blocks_are_stored_with_block_ids(client: WebClient, slack: SlackSandbox) -> None:
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "*card*"}},
              {"type": "actions", "block_id": "decide",
               "elements": [{"type": "button", "action_id": "approve", "text": {"type": "plain_text", "text": "OK"}}]}]
    client.chat_postMessage(channel="C0APPROVALS", text="card", blocks=blocks)

    stored = slack.messages("C0APPROVALS")[0]["blocks"]
    assert stored[0]["block_id"] and stored[1]["block_id"] == "decide"


def test_thread_replies_are_kept_per_thread_and_read_back_by_conversations_replies(
    client: WebClient, slack: SlackSandbox
) -> None:
    parent = client.chat_postMessage(channel="C0APPROVALS", text="parent")
    client.chat_postMessage(channel="C0APPROVALS", text="one", thread_ts=parent["ts"])
    client.chat_postMessage(channel="C0APPROVALS", text="two", thread_ts=parent["ts"])

    assert [m["text"] for m in slack.messages("C0APPROVALS")] == ["parent"]
    assert [m["text"] for m in slack.messages("C0APPROVALS", thread_ts=parent["ts"])] == ["one", "two"]
    replies = client.conversations_replies(channel="C0APPROVALS", ts=parent["ts"])
    assert [m["text"] for m in replies["messages"]] == ["parent", "one", "two"]
    assert replies["messages"][0]["reply_count"] == 2
    assert refusal(lambda: client.conversations_replies(channel="C0APPROVALS", ts="1.000001"))["error"] == (
        "thread_not_found"
    )
    assert refusal(lambda: client.conversations_replies(channel="C0NOPE", ts=parent["ts"]))["error"] == (
        "channel_not_found"
    )


def test_update_rewrites_the_message_in_place(client: WebClient, slack: SlackSandbox) -> None:
    posted = client.chat_postMessage(channel="C0APPROVALS", text="pending")
    updated = client.chat_update(channel="C0APPROVALS", ts=posted["ts"], text="approved by approver1",
                                 blocks=[{"type": "section", "text": {"type": "mrkdwn", "text": "done"}}])

    assert updated["ts"] == posted["ts"] and updated["text"] == "approved by approver1"
    [message] = slack.messages("C0APPROVALS")
    assert message["text"] == "approved by approver1" and message["edited"]["user"] == "U0GPULEASE"
    assert message["blocks"][0]["text"]["text"] == "done"


def test_update_refuses_unknown_and_foreign_messages(client: WebClient, slack: SlackSandbox) -> None:
    assert refusal(lambda: client.chat_update(channel="C0APPROVALS", ts="1.000001", text="x"))["error"] == (
        "message_not_found"
    )
    human = slack.post_as_user("C0APPROVALS", "U0ALICE", "my own words")
    assert refusal(lambda: client.chat_update(channel="C0APPROVALS", ts=human["ts"], text="x"))["error"] == (
        "cant_update_message"
    )
    slack.add_token("xoxb-other-app", Bot(user_id="U0OTHER", bot_id="B0OTHER", app_id="A0OTHER", name="other"))
    theirs = WebClient(token="xoxb-other-app", base_url=slack.url).chat_postMessage(channel="C0GENERAL", text="t")
    assert refusal(lambda: client.chat_update(channel="C0GENERAL", ts=theirs["ts"], text="x"))["error"] == (
        "cant_update_message"
    )


def test_post_message_refusals(client: WebClient) -> None:
    assert refusal(lambda: client.chat_postMessage(channel="C0NOPE", text="x"))["error"] == "channel_not_found"
    with pytest.warns(UserWarning, match="text"):  # slack_sdk warns before sending, as it should
        assert refusal(lambda: client.chat_postMessage(channel="C0GENERAL", text=""))["error"] == "no_text"
    assert refusal(lambda: client.chat_postMessage(channel="C0GENERAL", text="x" * 40_001))["error"] == (
        "msg_too_long"
    )


@pytest.mark.parametrize(
    ("blocks", "error", "message"),
    [
        ([{"text": {"type": "mrkdwn", "text": "no type"}}], "invalid_blocks",
         "[ERROR] missing required field: type [json-pointer:/blocks/0]"),
        ([{"type": "divider"}] * 51, "invalid_blocks", "[ERROR] no more than 50 items allowed [json-pointer:/blocks]"),
        ([{"type": "sparkles"}], "invalid_blocks", "[ERROR] unsupported type: sparkles [json-pointer:/blocks/0/type]"),
        ({"type": "divider"}, "invalid_blocks_format", None),
        ("not json", "invalid_blocks_format", None),
        ([{"type": "section", "text": {"type": "mrkdwn", "text": "x" * 3001}}], "invalid_blocks",
         "[ERROR] must be less than 3001 characters [json-pointer:/blocks/0/text/text]"),
        ([{"type": "actions", "elements": [{"type": "button", "action_id": "a", "value": "v" * 2001,
                                            "text": {"type": "plain_text", "text": "A"}}]}], "invalid_blocks",
         "[ERROR] must be less than 2001 characters [json-pointer:/blocks/0/elements/0/value]"),
        ([{"type": "divider", "block_id": "same"}, {"type": "divider", "block_id": "same"}], "invalid_blocks",
         "[ERROR] duplicate block_id: same [json-pointer:/blocks/1/block_id]"),
    ],
)
def test_malformed_blocks_are_refused_as_slack_names_them(client: WebClient, blocks, error, message) -> None:
    body = refusal(lambda: client.chat_postMessage(channel="C0GENERAL", text="x", blocks=blocks))
    assert body["error"] == error
    if message:
        assert message in body["response_metadata"]["messages"]


def test_dm_by_user_id_and_conversations_open_share_one_stable_channel(
    client: WebClient, slack: SlackSandbox
) -> None:
    opened = client.conversations_open(users="U0ALICE")
    again = client.conversations_open(users=["U0ALICE"], return_im=True)
    posted = client.chat_postMessage(channel="U0ALICE", text="your namespace is ready")

    assert opened["channel"]["id"] == again["channel"]["id"] == posted["channel"] == "D0ALICE"
    assert again["already_open"] is True and again["channel"]["user"] == "U0ALICE"
    assert [m["text"] for m in slack.messages("D0ALICE")] == ["your namespace is ready"]
    assert refusal(lambda: client.conversations_open(users="U0NOBODY"))["error"] == "user_not_found"
    assert refusal(lambda: client.conversations_open(users=""))["error"] == "users_list_not_supplied"


def test_post_ephemeral_reaches_one_member(client: WebClient, slack: SlackSandbox) -> None:
    slack.directory.add_channel("C0PRIVATE", "private", ["U0ADMIN"])
    answer = client.chat_postEphemeral(channel="C0GENERAL", user="U0BOB", text="only you see this")

    assert answer["message_ts"]
    [shown] = slack.ephemerals("C0GENERAL", user="U0BOB")
    assert shown["text"] == "only you see this" and slack.messages("C0GENERAL") == []
    assert refusal(lambda: client.chat_postEphemeral(channel="C0PRIVATE", user="U0BOB", text="x"))["error"] == (
        "user_not_in_channel"
    )
    assert refusal(lambda: client.chat_postEphemeral(channel="C0GENERAL", user="U0NOBODY", text="x"))["error"] == (
        "user_not_found"
    )


def test_get_permalink(client: WebClient) -> None:
    posted = client.chat_postMessage(channel="C0APPROVALS", text="card")
    link = client.chat_getPermalink(channel="C0APPROVALS", message_ts=posted["ts"])

    assert link["permalink"] == f"https://sandbox.slack.com/archives/C0APPROVALS/p{posted['ts'].replace('.', '')}"
    assert refusal(lambda: client.chat_getPermalink(channel="C0APPROVALS", message_ts="1.000001"))["error"] == (
        "message_not_found"
    )


def test_tokens_are_checked(slack: SlackSandbox) -> None:
    assert refusal(lambda: WebClient(base_url=slack.url).chat_postMessage(channel="C0GENERAL", text="x"))[
        "error"] == "not_authed"
    assert refusal(lambda: WebClient(token="xoxb-unknown", base_url=slack.url).auth_test())["error"] == (
        "invalid_auth"
    )
    assert [c.response["error"] for c in slack.calls()] == ["not_authed", "invalid_auth"]


def test_form_bodies_with_the_token_field_work_like_json_bodies(slack: SlackSandbox) -> None:
    blocks = json.dumps([{"type": "section", "text": {"type": "mrkdwn", "text": "form"}}])
    body = f"token={DEFAULT_TOKEN}&channel=C0GENERAL&text=hello&blocks={urllib.request.quote(blocks)}".encode()
    request = urllib.request.Request(slack.url + "chat.postMessage", data=body,
                                     headers={"Content-Type": "application/x-www-form-urlencoded"})
    with urllib.request.urlopen(request) as response:
        answer = json.loads(response.read())

    assert answer["ok"] is True
    assert slack.messages("C0GENERAL")[0]["blocks"][0]["text"]["text"] == "form"
    assert slack.calls("chat.postMessage")[0].args["text"] == "hello"


def test_unknown_methods_are_refused(client: WebClient) -> None:
    body = refusal(lambda: client.api_call("chat.scheduleMessage", json={"channel": "C0GENERAL"}))
    assert body["error"] == "unknown_method"
