"""The signing client: requests Slack's own verifier accepts (or refuses when told to
tamper), payloads in Slack's shapes, trigger ids and response URLs that work against the
sandbox, and the app's answers applied as Slack would apply them."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from urllib.parse import parse_qs

import pytest
from slack_sdk import WebClient
from slack_sdk.signature import SignatureVerifier
from slack_sdk.webhook import WebhookClient

from sandbox.slack import (
    DEFAULT_SIGNING_SECRET,
    ManualClock,
    SignedClient,
    SlackSandbox,
    payloads,
    sign,
    signed_headers,
)

from .endpoint import Recorded, Recorder


def form(request: Recorded) -> dict[str, str]:
    """Return a recorded form body as a dict."""
    return {k: v[0] for k, v in parse_qs(request.body.decode(), keep_blank_values=True).items()}


def interactivity(request: Recorded) -> dict:
    """Return the JSON payload of a recorded interactivity request."""
    return json.loads(form(request)["payload"])


def verified(request: Recorded) -> bool:
    """Say whether slack_sdk's SignatureVerifier accepts the recorded request."""
    return SignatureVerifier(DEFAULT_SIGNING_SECRET).is_valid_request(request.body, request.headers)


def test_sign_matches_slack_sdk() -> None:
    verifier = SignatureVerifier("secret")
    assert sign("secret", 1531420618, "a=b") == verifier.generate_signature(timestamp="1531420618", body="a=b")


def test_signed_headers_pass_the_verifier() -> None:
    headers = signed_headers(DEFAULT_SIGNING_SECRET, "command=%2Fgpu-namespace")
    assert SignatureVerifier(DEFAULT_SIGNING_SECRET).is_valid_request("command=%2Fgpu-namespace", headers)


def test_signatures_valid_wrong_and_stale(to_recorder: SignedClient, recorder: Recorder) -> None:
    to_recorder.slash_command("/gpu-namespace", "list", user_id="U0ALICE")
    to_recorder.slash_command("/gpu-namespace", "list", user_id="U0ALICE", bad_signature=True)
    to_recorder.slash_command("/gpu-namespace", "list", user_id="U0ALICE", stale=True)

    valid, wrong, stale = recorder.requests
    assert verified(valid) and not verified(wrong) and not verified(stale)
    assert valid.headers["Content-Type"] == "application/x-www-form-urlencoded"
    # The stale one is correctly signed: only its age is wrong.
    timestamp = stale.headers["X-Slack-Request-Timestamp"]
    assert stale.headers["X-Slack-Signature"] == sign(DEFAULT_SIGNING_SECRET, timestamp, stale.body)


def test_slash_command_fields_and_a_working_trigger(to_recorder: SignedClient, recorder: Recorder,
                                                    slack: SlackSandbox, client: WebClient) -> None:
    answer = to_recorder.slash_command("/gpu-namespace", "status alice-exp", user_id="U0ALICE",
                                       channel_id="C0GENERAL")

    fields = form(recorder.requests[0])
    assert answer.status == 200 and answer.elapsed > 0
    assert set(fields) >= {"token", "team_id", "team_domain", "channel_id", "channel_name", "user_id", "user_name",
                           "command", "text", "api_app_id", "response_url", "trigger_id"}
    assert (fields["user_name"], fields["channel_name"], fields["command"], fields["text"]) == (
        "alice", "general", "/gpu-namespace", "status alice-exp")
    assert fields["response_url"].startswith(slack.root_url + "/webhook/")
    modal = {"type": "modal", "title": {"type": "plain_text", "text": "Request"}, "blocks": []}
    client.views_open(trigger_id=fields["trigger_id"], view=modal)
    assert slack.views("U0ALICE")[0]["title"]["text"] == "Request"


def test_an_immediate_command_reply_is_shown_to_the_user(to_recorder: SignedClient, recorder: Recorder,
                                                         slack: SlackSandbox) -> None:
    recorder.reply_body = json.dumps({"text": "You have no leases."}).encode()
    to_recorder.slash_command("/gpu-namespace", "list", user_id="U0BOB")

    [shown] = slack.ephemerals(user="U0BOB")
    assert shown["text"] == "You have no leases." and shown["channel"] == "C0GENERAL"


def test_block_action_from_a_message(to_recorder: SignedClient, recorder: Recorder, slack: SlackSandbox,
                                     client: WebClient) -> None:
    blocks = [{"type": "actions", "block_id": "decision", "elements": [
        {"type": "button", "action_id": "approve", "value": "lease-7", "style": "primary",
         "text": {"type": "plain_text", "text": "Approve"}}]}]
    client.chat_postMessage(channel="C0APPROVALS", text="card", blocks=blocks)
    card = slack.messages("C0APPROVALS")[0]

    to_recorder.block_action("approve", user_id="U0APPROVER1", channel="C0APPROVALS", message=card)

    payload = interactivity(recorder.requests[0])
    assert verified(recorder.requests[0])
    assert payload["type"] == "block_actions" and payload["user"]["id"] == "U0APPROVER1"
    assert payload["container"] == {"type": "message", "message_ts": card["ts"], "channel_id": "C0APPROVALS",
                                    "is_ephemeral": False}
    assert payload["channel"] == {"id": "C0APPROVALS", "name": "gpu-approvals"}
    assert payload["message"]["ts"] == card["ts"]
    [action] = payload["actions"]
    assert (action["action_id"], action["block_id"], action["value"], action["type"]) == (
        "approve", "decision", "lease-7", "button")
    assert action["action_ts"] and payload["trigger_id"]
    with pytest.raises(ValueError, match="no element"):
        to_recorder.block_action("deny", user_id="U0APPROVER1", channel="C0APPROVALS", message=card)


def test_response_url_replaces_the_original_message_and_allows_five_uses(
    to_recorder: SignedClient, recorder: Recorder, slack: SlackSandbox, client: WebClient
) -> None:
    blocks = [{"type": "actions", "elements": [{"type": "button", "action_id": "approve",
                                                "text": {"type": "plain_text", "text": "Approve"}}]}]
    client.chat_postMessage(channel="C0APPROVALS", text="pending", blocks=blocks)
    to_recorder.block_action("approve", user_id="U0APPROVER1", channel="C0APPROVALS",
                             message=slack.messages("C0APPROVALS")[0])
    webhook = WebhookClient(interactivity(recorder.requests[0])["response_url"])

    assert webhook.send(text="Approved by <@U0APPROVER1>", replace_original=True).status_code == 200
    [card] = slack.messages("C0APPROVALS")
    assert card["text"] == "Approved by <@U0APPROVER1>" and "blocks" not in card  # the whole message is replaced
    webhook.send(text="only you", response_type="ephemeral")
    webhook.send(text="everyone", response_type="in_channel")
    webhook.send(text="again")
    webhook.send(text="fifth")
    sixth = webhook.send(text="sixth")

    assert (sixth.status_code, sixth.body) == (404, "used_url")
    assert [m["text"] for m in slack.messages("C0APPROVALS")] == ["Approved by <@U0APPROVER1>", "everyone"]
    assert [e["text"] for e in slack.ephemerals(user="U0APPROVER1")] == ["only you", "again", "fifth"]
    assert [c.status for c in slack.calls("response_url")] == [200] * 5 + [404]


def test_response_urls_expire_after_thirty_minutes(slack: SlackSandbox, clock: ManualClock) -> None:
    url = slack.issue_response_url(channel="C0GENERAL", user_id="U0ALICE")
    clock.advance(30 * 60 + 1)
    answer = WebhookClient(url).send(text="too late")
    assert (answer.status_code, answer.body) == (404, "expired_url")


def test_response_url_delete_original(slack: SlackSandbox, client: WebClient) -> None:
    posted = client.chat_postMessage(channel="C0APPROVALS", text="pending")
    url = slack.issue_response_url(channel="C0APPROVALS", user_id="U0ALICE", message_ts=posted["ts"])
    WebhookClient(url).send_dict({"delete_original": True})
    assert slack.messages("C0APPROVALS") == []


def test_unknown_and_malformed_response_url_posts(slack: SlackSandbox) -> None:
    assert WebhookClient(slack.root_url + "/webhook/nope").send(text="x").status_code == 404
    url = slack.issue_response_url(channel="C0GENERAL", user_id="U0ALICE")
    request = urllib.request.Request(url, data=b"not json", headers={"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request)
    assert (caught.value.code, caught.value.read()) == (400, b"invalid_payload")


def test_view_submission_state_values_and_the_answer_applied(
    to_recorder: SignedClient, recorder: Recorder, slack: SlackSandbox, client: WebClient
) -> None:
    view = {"type": "modal", "callback_id": "request", "private_metadata": "team=vision",
            "title": {"type": "plain_text", "text": "Request"}, "submit": {"type": "plain_text", "text": "Go"},
            "blocks": [{"type": "input", "block_id": "ns", "label": {"type": "plain_text", "text": "Name"},
                        "element": {"type": "plain_text_input", "action_id": "name"}}]}
    client.views_open(trigger_id=slack.issue_trigger("U0ALICE"), view=view)
    opened = slack.views("U0ALICE")[0]
    values = {"ns": {"name": "alice-exp"},
              "tier": {"tier": payloads.static_select("h100-1g", "H100 1g.10gb")},
              "units": {"units": payloads.number_input(2)}}
    recorder.reply_body = json.dumps({"response_action": "errors", "errors": {"ns": "taken"}}).encode()

    to_recorder.view_submission(opened, values, user_id="U0ALICE")

    payload = interactivity(recorder.requests[0])
    assert payload["type"] == "view_submission" and payload["view"]["id"] == opened["id"]
    assert payload["view"]["callback_id"] == "request" and payload["view"]["private_metadata"] == "team=vision"
    state = payload["view"]["state"]["values"]
    assert state["ns"]["name"] == {"type": "plain_text_input", "value": "alice-exp"}
    assert state["tier"]["tier"]["selected_option"]["value"] == "h100-1g"
    assert state["units"]["units"] == {"type": "number_input", "value": "2"}
    assert slack.view_errors(opened["id"]) == {"ns": "taken"} and len(slack.views("U0ALICE")) == 1

    recorder.reply_body = b""
    to_recorder.view_submission(opened, values, user_id="U0ALICE")
    assert slack.views("U0ALICE") == []  # an empty 200 closes the modal


def test_block_action_in_the_home_tab(to_recorder: SignedClient, recorder: Recorder, slack: SlackSandbox,
                                      client: WebClient) -> None:
    home = {"type": "home", "blocks": [{"type": "section", "block_id": "lease-7",
                                        "text": {"type": "mrkdwn", "text": "alice-exp"},
                                        "accessory": {"type": "button", "action_id": "extend", "value": "7",
                                                      "text": {"type": "plain_text", "text": "Extend"}}}]}
    client.views_publish(user_id="U0ALICE", view=home)

    to_recorder.block_action("extend", user_id="U0ALICE", view=slack.home("U0ALICE"))

    payload = interactivity(recorder.requests[0])
    assert payload["container"]["type"] == "view" and payload["view"]["type"] == "home"
    assert payload["actions"][0]["block_id"] == "lease-7" and "response_url" not in payload


def test_app_home_opened_event_envelope(to_recorder: SignedClient, recorder: Recorder) -> None:
    to_recorder.app_home_opened("U0CAROL", retry_num=1)

    request = recorder.requests[0]
    envelope = json.loads(request.body)
    assert verified(request) and request.headers["Content-Type"] == "application/json"
    assert envelope["type"] == "event_callback" and envelope["event"]["type"] == "app_home_opened"
    assert (envelope["event"]["user"], envelope["event"]["channel"], envelope["event"]["tab"]) == (
        "U0CAROL", "D0CAROL", "home")
    assert envelope["authorizations"][0]["user_id"] == "U0GPULEASE" and envelope["event_id"].startswith("Ev")
    assert request.headers["X-Slack-Retry-Num"] == "1"
