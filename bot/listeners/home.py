"""App Home: the user's leases with time left and Extend / Release buttons (bot.home), and a
button that opens the request form (before the ack, while the trigger is fresh)."""

from __future__ import annotations

from typing import Any

from slack_bolt import Ack, App, BoltContext
from slack_sdk import WebClient

from .. import ids
from ..deps import BotDeps
from ..home import publish
from ..listen import listen
from .request_form import fill_form, open_form


def register(app: App, deps: BotDeps) -> None:
    def home_opened(event: dict[str, Any], client: WebClient) -> None:
        if event.get("tab", "home") == "home":
            publish(client, deps, event["user"])

    def open_from_home(ack: Ack, body: dict[str, Any], context: BoltContext) -> None:
        ack()
        open_form(deps, context, trigger_id=body["trigger_id"])

    def request_from_home(body: dict[str, Any], client: WebClient, context: BoltContext) -> None:
        fill_form(client, deps, context, user=body["user"]["id"], retry="click Request GPUs")

    listen(app.event("app_home_opened"), deps, home_opened)
    listen(app.action(ids.HOME_REQUEST), deps, request_from_home, ack=open_from_home)
