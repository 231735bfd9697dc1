"""What Slack sends an app, as plain data: slash command forms, interactivity payloads
(block_actions, view_submission, view_closed) and Events API envelopes.

Pure functions, so a test can also hand them to `App.dispatch(BoltRequest(...))` directly.
The state helpers build one input's entry of `view.state.values[block_id][action_id]` in
Slack's shape. Part of sandbox.slack.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Actor:
    """Who acts and where: the user, their team and the app they talk to."""

    user_id: str
    user_name: str
    team_id: str = "T0SANDBOX"
    team_domain: str = "sandbox"
    api_app_id: str = "A0GPULEASE"
    verification_token: str = "sandbox-verification-token"

    def user(self) -> dict[str, Any]:
        """Return the `user` object of interactivity payloads."""
        return {"id": self.user_id, "username": self.user_name, "name": self.user_name, "team_id": self.team_id}

    def team(self) -> dict[str, Any]:
        """Return the `team` object of interactivity payloads."""
        return {"id": self.team_id, "domain": self.team_domain}


def _action_ts() -> str:
    return f"{time.time():.6f}"


# -- view state values -------------------------------------------------------------------------

def plain_text_input(value: str | None) -> dict[str, Any]:
    """Return the state of a plain_text_input (None: left empty)."""
    return {"type": "plain_text_input", "value": value}


def number_input(value: int | float | str | None) -> dict[str, Any]:
    """Return the state of a number_input; Slack sends the number as a string."""
    return {"type": "number_input", "value": None if value is None else str(value)}


def _option(value: str, text: str | None = None) -> dict[str, Any]:
    return {"text": {"type": "plain_text", "text": text or value, "emoji": True}, "value": value}


def static_select(value: str | None, text: str | None = None) -> dict[str, Any]:
    """Return the state of a static_select (None: nothing chosen)."""
    return {"type": "static_select", "selected_option": _option(value, text) if value is not None else None}


def multi_static_select(values: list[str]) -> dict[str, Any]:
    """Return the state of a multi_static_select."""
    return {"type": "multi_static_select", "selected_options": [_option(v) for v in values]}


def radio_buttons(value: str | None, text: str | None = None) -> dict[str, Any]:
    """Return the state of radio_buttons."""
    return {"type": "radio_buttons", "selected_option": _option(value, text) if value is not None else None}


def checkboxes(values: list[str]) -> dict[str, Any]:
    """Return the state of checkboxes."""
    return {"type": "checkboxes", "selected_options": [_option(v) for v in values]}


def users_select(user_id: str | None) -> dict[str, Any]:
    """Return the state of a users_select."""
    return {"type": "users_select", "selected_user": user_id}


def datepicker(date: str | None) -> dict[str, Any]:
    """Return the state of a datepicker (date as YYYY-MM-DD)."""
    return {"type": "datepicker", "selected_date": date}


def state_values(values: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Return view.state.values; a bare string stands for a plain_text_input's value."""
    return {
        block_id: {
            action_id: plain_text_input(state) if isinstance(state, str) or state is None else state
            for action_id, state in actions.items()
        }
        for block_id, actions in values.items()
    }


# -- payloads ----------------------------------------------------------------------------------

def slash_command(actor: Actor, *, command: str, text: str, channel_id: str, channel_name: str,
                  response_url: str, trigger_id: str) -> dict[str, str]:
    """Return the form fields of a slash command, in Slack's order."""
    return {
        "token": actor.verification_token,
        "team_id": actor.team_id,
        "team_domain": actor.team_domain,
        "channel_id": channel_id,
        "channel_name": channel_name,
        "user_id": actor.user_id,
        "user_name": actor.user_name,
        "command": command,
        "text": text,
        "api_app_id": actor.api_app_id,
        "is_enterprise_install": "false",
        "response_url": response_url,
        "trigger_id": trigger_id,
    }


def find_element(blocks: list[dict[str, Any]], action_id: str) -> tuple[str | None, dict[str, Any]] | None:
    """Return (block_id, element) of the interactive element with this action_id, or None."""
    for block in blocks or []:
        candidates = list(block.get("elements") or [])
        candidates += [block[k] for k in ("accessory", "element") if isinstance(block.get(k), dict)]
        for element in candidates:
            if isinstance(element, dict) and element.get("action_id") == action_id:
                return block.get("block_id"), element
    return None


def action(element: dict[str, Any], *, block_id: str | None, action_id: str, value: str | None = None,
           selected: str | None = None) -> dict[str, Any]:
    """Return one entry of `actions`: a button click, or a choice in a select/overflow."""
    kind = element.get("type", "button")
    entry: dict[str, Any] = {"action_id": action_id, "block_id": block_id, "type": kind, "action_ts": _action_ts()}
    if kind == "button":
        entry["text"] = element.get("text", {"type": "plain_text", "text": action_id})
        entry["value"] = value if value is not None else element.get("value")
        if element.get("style"):
            entry["style"] = element["style"]
    else:
        chosen = selected if selected is not None else value
        options = element.get("options") or []
        option = next((o for o in options if o.get("value") == chosen), None)
        entry["selected_option"] = option or (_option(chosen) if chosen is not None else None)
    return entry


def block_actions(actor: Actor, *, actions: list[dict[str, Any]], trigger_id: str,
                  channel: dict[str, str] | None = None, message: dict[str, Any] | None = None,
                  response_url: str | None = None, view: dict[str, Any] | None = None) -> dict[str, Any]:
    """Return a block_actions payload from a message (channel, message) or from a view."""
    payload: dict[str, Any] = {
        "type": "block_actions",
        "user": actor.user(),
        "api_app_id": actor.api_app_id,
        "token": actor.verification_token,
        "trigger_id": trigger_id,
        "team": actor.team(),
        "enterprise": None,
        "is_enterprise_install": False,
        "actions": actions,
    }
    if view is not None:
        payload["container"] = {"type": "view", "view_id": view["id"]}
        payload["view"] = view
        payload["state"] = view.get("state", {"values": {}})
    else:
        if channel is None or message is None:
            raise ValueError("a message action needs channel and message (or a view)")
        payload["container"] = {"type": "message", "message_ts": message["ts"], "channel_id": channel["id"],
                                "is_ephemeral": False}
        payload["channel"] = channel
        payload["message"] = message
        payload["state"] = {"values": {}}
        payload["response_url"] = response_url
    return payload


def view_submission(actor: Actor, *, view: dict[str, Any], values: dict[str, dict[str, Any]],
                    trigger_id: str) -> dict[str, Any]:
    """Return a view_submission payload for a stored view with the user's input."""
    return {
        "type": "view_submission",
        "team": actor.team(),
        "user": actor.user(),
        "api_app_id": actor.api_app_id,
        "token": actor.verification_token,
        "trigger_id": trigger_id,
        "view": {**view, "state": {"values": state_values(values)}},
        "response_urls": [],
        "is_enterprise_install": False,
        "enterprise": None,
    }


def view_closed(actor: Actor, *, view: dict[str, Any]) -> dict[str, Any]:
    """Return a view_closed payload (sent only for views with notify_on_close)."""
    return {
        "type": "view_closed",
        "team": actor.team(),
        "user": actor.user(),
        "api_app_id": actor.api_app_id,
        "token": actor.verification_token,
        "view": view,
        "is_cleared": False,
        "is_enterprise_install": False,
        "enterprise": None,
    }


def event_callback(actor: Actor, event: dict[str, Any], *, bot_user_id: str) -> dict[str, Any]:
    """Return an Events API envelope around one event."""
    now = time.time()
    return {
        "token": actor.verification_token,
        "team_id": actor.team_id,
        "api_app_id": actor.api_app_id,
        "event": {"event_ts": f"{now:.6f}", **event},
        "type": "event_callback",
        "event_id": "Ev" + secrets.token_hex(5).upper(),
        "event_time": int(now),
        "authorizations": [{"enterprise_id": None, "team_id": actor.team_id, "user_id": bot_user_id,
                            "is_bot": True, "is_enterprise_install": False}],
        "is_ext_shared_channel": False,
        "event_context": "4-" + secrets.token_urlsafe(24),
    }


def app_home_opened(actor: Actor, *, channel: str, bot_user_id: str, tab: str = "home",
                    view: dict[str, Any] | None = None) -> dict[str, Any]:
    """Return the envelope of an app_home_opened event (view: the home view already published)."""
    event: dict[str, Any] = {"type": "app_home_opened", "user": actor.user_id, "channel": channel, "tab": tab}
    if view is not None:
        event["view"] = view
    return event_callback(actor, event, bot_user_id=bot_user_id)
