"""Telling the person who clicked what their click did, wherever they clicked.

A modal the listener opened (bot.modals) shows the answer in place of its form; otherwise a
button in a message answers through the message's response_url (ephemeral, the message stays
as it is); a button on App Home re-renders Home with the answer on top, or, when Home cannot
be rendered (the store is failing, say), DMs the answer instead.
"""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import Respond
from slack_sdk import WebClient

from . import home, modals
from .deps import BotDeps

logger = logging.getLogger(__name__)


def user_of(body: dict[str, Any]) -> str | None:
    """Return who acted, whatever Slack sent (command form, interactivity payload or event)."""
    user = body.get("user")
    if isinstance(user, dict):
        return user.get("id")
    return body.get("user_id") or (body.get("event") or {}).get("user")


def tell(body: dict[str, Any], respond: Respond | None, client: WebClient, deps: BotDeps, text: str, *,
         modal: dict[str, str] | None = None) -> None:
    """Answer a command or a click with `text`, where the user is looking (in `modal`, the one
    the listener opened, when given and still open)."""
    user = user_of(body)
    if user is None:
        return  # nobody to tell (not an interaction); the caller has logged what happened
    if modal is not None and modals.show_notice(client, modal, text):
        return
    if (body.get("view") or {}).get("type") == "home":
        if _on_home(client, deps, user, text):
            return
    elif respond is not None and body.get("response_url"):
        respond(text=text, response_type="ephemeral", replace_original=False)
        return
    client.chat_postMessage(channel=user, text=text)  # no other place to answer, or Home failed


def _on_home(client: WebClient, deps: BotDeps, user: str, text: str) -> bool:
    """Re-render the user's Home with `text` on top; False when it cannot be rendered."""
    try:
        home.publish(client, deps, user, notice=text)
    except Exception as exc:  # noqa: BLE001 - logged; the caller DMs the answer instead
        # Home reads the store and Slack again: when either fails, the answer (often the
        # reference of that very failure) must not be lost with it.
        logger.warning("slack.home_not_published user=%s error=%s; answering in a DM instead",
                       user, type(exc).__name__, exc_info=exc,
                       extra={"event": "slack.home_not_published", "user": user})
        return False
    return True
