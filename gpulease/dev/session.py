"""What a person does on the dev page, done to the embedded stack as Slack would do it.

Each action finds what was clicked or submitted in what the sandbox Slack actually stored
(never trusting a value the browser sends), then sends the bot the signed request Slack
would send. `state(user)` is everything that user sees, rendered, with a version so the page
redraws only on change. Imported by gpulease.dev only.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import asdict
from datetime import timedelta
from typing import Any

from bot import ids
from gpulease.demo.scenario import APPROVALS, NAMES
from gpulease.dev import render
from gpulease.dev.inputs import BadInput, modal_state
from gpulease.embedded import Embedded
from sandbox.slack import SignedResponse, dm_channel_id, payloads
from workflows import api

USERS = NAMES  # the sandbox directory's people, in the order the picker shows them
COMMANDS = (ids.NAMESPACE_COMMAND, ids.ADMIN_COMMAND)
STEPS = {"1h": timedelta(hours=1), "1d": timedelta(days=1)}
EPHEMERALS_SHOWN = 10


class DevSession:
    """The dev page's view of one embedded stack, shared by every browser tab."""

    def __init__(self, env: Embedded) -> None:
        self.env = env
        self._lock = threading.Lock()
        self._typed: dict[str, dict[str, str | None]] = {}  # view id -> what was last submitted
        self._local_errors: dict[str, dict[str, str]] = {}  # view id -> errors Slack's client found

    # -- what a person does --------------------------------------------------------------

    def command(self, user: str, line: str) -> dict[str, Any]:
        """Type a slash command line such as `/gpu-namespace list`."""
        command, _, text = line.strip().partition(" ")
        if command not in COMMANDS:
            raise BadInput(f"unknown command {command!r}: try {' or '.join(COMMANDS)}")
        return _answered(self.env.to_bot.slash_command(command, text.strip(), user_id=user))

    def click(self, user: str, ref: dict[str, str]) -> dict[str, Any]:
        """Click the button `ref` names, in the message or view it says it is in."""
        surface = ref.get("surface")
        action_id, block_id = ref.get("action_id") or "", ref.get("block_id") or None
        if surface == "message":
            channel = ref.get("channel") or ""
            if channel not in (APPROVALS, dm_channel_id(user)):
                raise BadInput(f"{USERS[user]} cannot see channel {channel!r}", 403)
            message = self._message(channel, ref.get("ts") or "")
            element = _find(message, action_id, block_id)
            answer = self.env.to_bot.block_action(action_id, user_id=user, channel=channel, message=message,
                                                  block_id=block_id, value=element.get("value"))
        elif surface == "ephemeral":
            message = next((e for e in self.env.slack.ephemerals(user=user) if e["ts"] == ref.get("ts")), None)
            if message is None:
                raise BadInput("no such ephemeral message for this user", 404)
            element = _find(message, action_id, block_id)
            answer = self.env.to_bot.block_action(action_id, user_id=user, channel=message["channel"],
                                                  message=message, block_id=block_id, value=element.get("value"))
        elif surface in ("home", "modal"):
            view = self._view(user, surface, ref.get("view_id") or "")
            element = _find(view, action_id, block_id)
            answer = self.env.to_bot.block_action(action_id, user_id=user, view=view, block_id=block_id,
                                                  value=element.get("value"))
        else:
            raise BadInput("'surface' must be message, ephemeral, home or modal")
        return _answered(answer)

    def submit(self, user: str, view_id: str, typed: Any) -> dict[str, Any]:
        """Submit the user's open modal; answer the field errors, Slack's or the bot's."""
        view = self._view(user, "modal", view_id)
        values, errors = modal_state(view, typed)
        with self._lock:
            self._typed[view_id] = {k: v for k, v in typed.items()}
            self._local_errors.pop(view_id, None)
            if errors:
                self._local_errors[view_id] = errors
        if errors:  # Slack's client refuses these without telling the app
            return {"ok": False, "errors": errors}
        answer = self.env.to_bot.view_submission(view, values, user_id=user)
        result = _answered(answer)
        body = _json(answer)
        if isinstance(body, dict) and body.get("response_action") == "errors":
            return {**result, "ok": False, "errors": body.get("errors") or {}}
        return {**result, "errors": {}}

    def close(self, user: str, view_id: str) -> dict[str, Any]:
        """Close the user's modal with its Cancel button (the bot hears of it only if it asked to)."""
        view = self._view(user, "modal", view_id)
        if view.get("notify_on_close"):
            return _answered(self.env.to_bot.view_closed(view, user_id=user))
        self.env.to_bot.sandbox.close_view(view_id)
        return {"ok": True, "ms": 0}

    def open_home(self, user: str) -> dict[str, Any]:
        """Open the App Home tab, which makes the bot publish it afresh."""
        return _answered(self.env.to_bot.app_home_opened(user))

    def advance(self, step: str) -> dict[str, Any]:
        """Move the workflow clock forward and run the minute sweep, as if the time had passed."""
        now = self.env.clock.advance(STEPS[step])
        report = self.env.sweep()
        return {"ok": True, "now": now.isoformat(timespec="minutes"), "sweep": asdict(report)}

    @staticmethod
    def capacity() -> dict[str, Any]:
        """Return capacity, reserved and free units per pool."""
        return {"pools": [{"cluster": p.cluster, "tier": p.tier, "capacity": p.capacity, "reserved": p.reserved,
                           "free": p.free} for p in api.capacity()]}

    # -- what a person sees --------------------------------------------------------------

    def state(self, user: str) -> dict[str, Any]:
        """Return what `user` sees, rendered, with a version that changes only when it does."""
        slack = self.env.slack
        stack = slack.views(user)
        top = stack[-1] if stack else None
        modal = None
        if top is not None:
            with self._lock:
                typed = dict(self._typed.get(top["id"], {}))
                errors = self._local_errors.get(top["id"]) or slack.view_errors(top["id"])
            modal = render.modal(top, depth=len(stack), values=typed, errors=errors)
        sections = {
            "ephemerals": render.ephemerals(slack.ephemerals(user=user)[-EPHEMERALS_SHOWN:]),
            "approvals": render.conversation(self._threads(APPROVALS), APPROVALS, "No approval cards yet."),
            "dms": render.conversation(self._threads(dm_channel_id(user)), dm_channel_id(user),
                                       "The bot has not written to you yet."),
            "home": render.home(slack.home(user)),
            "modal": modal or "",
        }
        clock = self.env.clock
        state = {"user": user, "now": f"{clock():%Y-%m-%d %H:%M} UTC",
                 "ahead": _ahead(clock.offset), "modal_id": top["id"] if top else None, "sections": sections}
        state["version"] = hashlib.sha256(json.dumps(state, sort_keys=True).encode()).hexdigest()[:16]
        return state

    # -- finding what was clicked --------------------------------------------------------

    def _threads(self, channel: str) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
        slack = self.env.slack
        return [(parent, slack.messages(channel, parent["ts"])) for parent in slack.messages(channel)]

    def _message(self, channel: str, ts: str) -> dict[str, Any]:
        for parent, replies in self._threads(channel):
            for message in (parent, *replies):
                if message["ts"] == ts:
                    return message
        raise BadInput(f"no message {ts!r} in {channel} (deleted?)", 404)

    def _view(self, user: str, surface: str, view_id: str) -> dict[str, Any]:
        if surface == "home":
            view = self.env.slack.home(user)
            if view is None or view["id"] != view_id:
                raise BadInput("this App Home is not the one published now: reload it", 409)
            return view
        view = next((v for v in self.env.slack.views(user) if v["id"] == view_id), None)
        if view is None:
            raise BadInput(f"no modal {view_id!r} is open for {USERS[user]}", 409)
        return view


def _find(surface: dict[str, Any], action_id: str, block_id: str | None) -> dict[str, Any]:
    """Return the element clicked, matching the block too (a Home tab repeats action ids)."""
    for item in surface.get("blocks") or []:
        if block_id and item.get("block_id") != block_id:
            continue
        found = payloads.find_element([item], action_id)
        if found is not None:
            return found[1]
    raise BadInput(f"no element {action_id!r} in block {block_id!r} there (the message may have changed)", 409)


def _json(answer: SignedResponse) -> Any:
    try:
        return answer.json()
    except ValueError:
        return None


def _answered(answer: SignedResponse) -> dict[str, Any]:
    if answer.status != 200:
        raise BadInput(f"the bot answered HTTP {answer.status}: {answer.text[:200]}", 502)
    return {"ok": True, "ms": round(answer.elapsed * 1000)}


def _ahead(offset: timedelta) -> str:
    hours = int(offset.total_seconds() // 3600)
    return f"+{hours // 24}d {hours % 24}h" if hours else ""
