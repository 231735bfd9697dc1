"""App Home: the user's leases with time left and Extend / Release buttons (bot.home), and a
button that opens the request form."""

from __future__ import annotations

from typing import Any

from slack_bolt import Ack, App
from slack_sdk import WebClient

from .. import ids
from ..deps import BotDeps
from ..errors import reported
from ..home import publish
from .request_form import open_form


def register(app: App, deps: BotDeps) -> None:
    @app.event("app_home_opened")
    @reported(deps)
    def home_opened(event: dict[str, Any], client: WebClient) -> None:
        if event.get("tab", "home") == "home":
            publish(client, deps, event["user"])

    @app.action(ids.HOME_REQUEST)
    @reported(deps)
    def request_from_home(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        ack()
        open_form(client, deps, trigger_id=body["trigger_id"], user=body["user"]["id"])
