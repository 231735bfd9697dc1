"""The pieces together: a real Bolt app served over WSGI talks to the sandbox through
WebClient(base_url=...), and the signing client drives it as Slack would. A slash command
opens a modal, a submission is refused then accepted, an approver's click rewrites the
card through response_url, App Home is published, and tampered requests are refused."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest
from slack_bolt import App
from slack_bolt.adapter.wsgi import SlackRequestHandler
from slack_sdk import WebClient

from sandbox.slack import DEFAULT_SIGNING_SECRET, DEFAULT_TOKEN, SignedClient, SlackSandbox

REQUEST_MODAL = {
    "type": "modal", "callback_id": "request", "title": {"type": "plain_text", "text": "Request GPUs"},
    "submit": {"type": "plain_text", "text": "Request"},
    "blocks": [{"type": "input", "block_id": "ns", "label": {"type": "plain_text", "text": "Namespace"},
                "element": {"type": "plain_text_input", "action_id": "name"}}],
}


def build_app(slack: SlackSandbox) -> App:
    """Return a tiny Bolt app with one listener per kind of request."""
    app = App(token=DEFAULT_TOKEN, signing_secret=DEFAULT_SIGNING_SECRET,
              client=WebClient(token=DEFAULT_TOKEN, base_url=slack.url))

    @app.command("/gpu-namespace")
    def open_form(ack: Any, body: dict, client: WebClient) -> None:
        ack("Opening the request form")
        client.views_open(trigger_id=body["trigger_id"], view=REQUEST_MODAL)

    @app.view("request")
    def submitted(ack: Any, body: dict, view: dict, client: WebClient) -> None:
        name = view["state"]["values"]["ns"]["name"]["value"]
        if name.startswith("kube-"):
            ack(response_action="errors", errors={"ns": "kube-* names are reserved"})
            return
        ack()
        client.chat_postMessage(channel="C0APPROVALS", text=f"<@{body['user']['id']}> requests {name}", blocks=[
            {"type": "section", "text": {"type": "mrkdwn", "text": f"*{name}*"}},
            {"type": "actions", "block_id": "decision", "elements": [
                {"type": "button", "action_id": "approve", "value": name,
                 "text": {"type": "plain_text", "text": "Approve"}}]},
        ])

    @app.action("approve")
    def approve(ack: Any, body: dict, respond: Any) -> None:
        ack()
        respond(replace_original=True, text=f"{body['actions'][0]['value']} approved by <@{body['user']['id']}>")

    @app.event("app_home_opened")
    def home(event: dict, client: WebClient) -> None:
        client.views_publish(user_id=event["user"], view={
            "type": "home", "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "Your leases"}}]})

    return app


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


@pytest.fixture
def bot_url(slack: SlackSandbox) -> Iterator[str]:
    """Serve the Bolt app on a free port in a thread and return its events URL."""
    app = build_app(slack)
    server = make_server("127.0.0.1", 0, SlackRequestHandler(app), server_class=_ThreadingWSGIServer,
                         handler_class=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/slack/events"
    finally:
        server.shutdown()
        thread.join()
        server.server_close()


@pytest.fixture
def to_bot(bot_url: str, slack: SlackSandbox) -> SignedClient:
    """Return the signing client aimed at the Bolt app."""
    return SignedClient(bot_url, DEFAULT_SIGNING_SECRET, slack.url)


def test_bolt_checked_its_token_with_auth_test_at_start(to_bot: SignedClient, slack: SlackSandbox) -> None:
    assert slack.calls("auth.test")[0].ok


def test_request_flow_from_command_to_approved_card(to_bot: SignedClient, slack: SlackSandbox) -> None:
    answer = to_bot.slash_command("/gpu-namespace", user_id="U0ALICE")
    assert answer.status == 200 and answer.elapsed < 3  # acked within Slack's 3 s
    slack.wait_for_calls("views.open", ok_only=True)
    [form] = slack.views("U0ALICE")
    assert [e["text"] for e in slack.ephemerals(user="U0ALICE")] == ["Opening the request form"]

    refused = to_bot.view_submission(form, {"ns": {"name": "kube-mine"}}, user_id="U0ALICE")
    assert refused.json() == {"response_action": "errors", "errors": {"ns": "kube-* names are reserved"}}
    assert slack.view_errors(form["id"]) == {"ns": "kube-* names are reserved"} and slack.views("U0ALICE")

    accepted = to_bot.view_submission(form, {"ns": {"name": "alice-exp"}}, user_id="U0ALICE")
    assert accepted.status == 200 and slack.views("U0ALICE") == []
    [card] = slack.wait_for_messages("C0APPROVALS", 1)
    assert card["text"] == "<@U0ALICE> requests alice-exp"

    to_bot.block_action("approve", user_id="U0APPROVER1", channel="C0APPROVALS", message=card)
    slack.wait_for_calls("response_url", ok_only=True)
    [decided] = slack.messages("C0APPROVALS")
    assert decided["ts"] == card["ts"] and decided["text"] == "alice-exp approved by <@U0APPROVER1>"


def test_app_home_is_published_when_opened(to_bot: SignedClient, slack: SlackSandbox) -> None:
    assert to_bot.app_home_opened("U0CAROL").status == 200
    slack.wait_for_calls("views.publish", ok_only=True)
    assert slack.home("U0CAROL")["blocks"][0]["text"]["text"] == "Your leases"


@pytest.mark.parametrize("tamper", [{"bad_signature": True}, {"stale": True}])
def test_tampered_requests_are_refused_by_bolt(to_bot: SignedClient, slack: SlackSandbox, tamper: dict) -> None:
    answer = to_bot.slash_command("/gpu-namespace", user_id="U0ALICE", **tamper)
    assert answer.status == 401 and answer.json() == {"error": "invalid request"}
    assert slack.calls("views.open") == []
