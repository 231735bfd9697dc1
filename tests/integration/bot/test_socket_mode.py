"""Socket Mode: the same app, with no signature to check (Slack's WebSocket is authenticated
by the app token), handles what arrives over the socket and answers through the same client."""

from __future__ import annotations

from slack_bolt.adapter.socket_mode import SocketModeHandler
from slack_bolt.adapter.socket_mode.internals import run_bolt_app
from slack_sdk.socket_mode.request import SocketModeRequest

from bot.app import build_app
from sandbox.slack import payloads

from . import flows
from .conftest import POLICY


def test_a_command_over_the_socket_is_handled_without_a_signature(runtime, slack, slack_client):
    app = build_app(client=slack_client, signing_secret=None, policy=POLICY, socket_mode=True)
    handler = SocketModeHandler(app, "xapp-1-sandbox")
    assert handler.client.web_client is slack_client  # Slack calls still go through the one client
    payload = payloads.slash_command(
        payloads.Actor("U0ALICE", "alice"), command="/gpu-namespace", text="list", channel_id="C0GENERAL",
        channel_name="general", response_url=slack.issue_response_url(channel="C0GENERAL", user_id="U0ALICE"),
        trigger_id=slack.issue_trigger("U0ALICE"),
    )
    response = run_bolt_app(app, SocketModeRequest(type="slash_commands", envelope_id="env-1", payload=payload))
    assert response.status == 200
    flows.ephemeral(slack, "U0ALICE", "You hold no leases")
