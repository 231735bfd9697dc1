"""App Home: the user's leases with time left and Extend / Release buttons (bot.home), and a
button that opens the request form."""

from __future__ import annotations

from typing import Any

from slack_bolt import App
from slack_sdk import WebClient

from .. import ids
from ..deps import BotDeps
from ..home import publish
from ..listen import listen
from .request_form import open_form


def register(app: App, deps: BotDeps) -> None:
    def home_opened(event: dict[str, Any], client: WebClient) -> None:
        if event.get("tab", "home") == "home":
            publish(client, deps, event["user"])

    def request_from_home(body: dict[str, Any], client: WebClient) -> None:
        open_form(client, deps, trigger_id=body["trigger_id"], user=body["user"]["id"])

    listen(app.event("app_home_opened"), deps, home_opened)
    listen(app.action(ids.HOME_REQUEST), deps, request_from_home)
