"""Modals and App Home tabs the sandbox shows, and the trigger ids that open them.

A trigger id is issued for one user (by the signing client, as Slack issues one per
interaction), is good for 3 s on the injected clock, and is exchanged at most once:
views.open then fails with `expired_trigger_id` or `exchanged_trigger_id`, as Slack's method
reference names them. Each user has a stack of up to 3 modals (views.open, then up to two
views.push) and one home view. Part of sandbox.slack.
"""

from __future__ import annotations

import copy
import itertools
import secrets
import threading
from dataclasses import dataclass
from typing import Any

from .clock import Clock
from .errors import ApiError
from .state import Bot
from .validation import with_block_ids

TRIGGER_TTL_S = 3.0
MAX_STACK = 3


@dataclass
class _Trigger:
    user_id: str
    issued_at: float
    exchanged: bool = False


class Surfaces:
    """Views by id, each user's modal stack and home tab, and issued trigger ids."""

    def __init__(self, clock: Clock, team_id: str) -> None:
        self._clock = clock
        self._team_id = team_id
        self._lock = threading.RLock()
        self._ids = itertools.count(1)
        self._view_ids = itertools.count(1)
        self._triggers: dict[str, _Trigger] = {}
        self._views: dict[str, dict[str, Any]] = {}
        self._owner: dict[str, str] = {}
        self._stacks: dict[str, list[str]] = {}
        self._homes: dict[str, str] = {}
        self._errors: dict[str, dict[str, str]] = {}

    def reset(self) -> None:
        """Forget every view and trigger."""
        with self._lock:
            for store in (self._triggers, self._views, self._owner, self._stacks, self._homes, self._errors):
                store.clear()

    def issue_trigger(self, user_id: str, trigger_id: str | None = None) -> str:
        """Register a trigger id for the user (a fresh one unless given) and return it."""
        with self._lock:
            # Slack's shape: "12345.98765.abcd2358fdea".
            trigger_id = trigger_id or f"{next(self._ids)}.{secrets.randbelow(10**10)}.{secrets.token_hex(16)}"
            self._triggers[trigger_id] = _Trigger(user_id, self._clock())
            return trigger_id

    def exchange_trigger(self, trigger_id: str | None) -> str:
        """Spend a trigger id and return its user, or refuse as Slack does."""
        if not trigger_id:
            raise ApiError("invalid_arguments", "[ERROR] missing required field: trigger_id")
        with self._lock:
            trigger = self._triggers.get(trigger_id)
            if trigger is None:
                raise ApiError("invalid_trigger_id")
            if trigger.exchanged:
                raise ApiError("exchanged_trigger_id")
            if self._clock() - trigger.issued_at > TRIGGER_TTL_S:
                raise ApiError("expired_trigger_id")
            trigger.exchanged = True
            return trigger.user_id

    def open(self, user_id: str, view: dict[str, Any], bot: Bot) -> dict[str, Any]:
        """Open a modal as the root of the user's stack (replacing what was open)."""
        with self._lock:
            record = self._store(user_id, view, bot, root_view_id=None, previous_view_id=None)
            self._stacks[user_id] = [record["id"]]
            return copy.deepcopy(record)

    def push(self, user_id: str, view: dict[str, Any], bot: Bot) -> dict[str, Any]:
        """Push a modal onto the user's stack (at most 3 deep)."""
        with self._lock:
            stack = self._stacks.get(user_id, [])
            if not stack:
                raise ApiError("not_found")
            if len(stack) >= MAX_STACK:
                raise ApiError("push_limit_reached")
            record = self._store(user_id, view, bot, root_view_id=stack[0], previous_view_id=stack[-1])
            stack.append(record["id"])
            return copy.deepcopy(record)

    def update(self, view: dict[str, Any], *, view_id: str | None, external_id: str | None,
               hash: str | None) -> dict[str, Any]:
        """Replace a view's content, refusing unknown views and stale hashes."""
        with self._lock:
            if view_id is None and external_id is None:
                raise ApiError("invalid_arguments", "[ERROR] either view_id or external_id is required")
            current = self._views.get(view_id) if view_id else next(
                (v for v in self._views.values() if v["external_id"] and v["external_id"] == external_id), None
            )
            if current is None:
                raise ApiError("not_found")
            if hash and hash != current["hash"]:
                raise ApiError("hash_conflict")
            self._replace(current, view)
            return copy.deepcopy(current)

    def publish(self, user_id: str, view: dict[str, Any], bot: Bot, hash: str | None) -> dict[str, Any]:
        """Publish the user's home tab, refusing a stale hash."""
        with self._lock:
            home_id = self._homes.get(user_id)
            if home_id is None:
                record = self._store(user_id, view, bot, root_view_id=None, previous_view_id=None)
                self._homes[user_id] = record["id"]
                return copy.deepcopy(record)
            current = self._views[home_id]
            if hash and hash != current["hash"]:
                raise ApiError("hash_conflict")
            self._replace(current, view)
            return copy.deepcopy(current)

    def answer_submission(self, view_id: str, response: dict[str, Any] | None, bot: Bot) -> None:
        """Apply the app's answer to a view_submission as Slack would (close, errors, update, push, clear)."""
        with self._lock:
            user_id = self._owner.get(view_id)
            if user_id is None:
                return
            stack = self._stacks.get(user_id, [])
            action = (response or {}).get("response_action")
            self._errors.pop(view_id, None)
            if action == "errors":
                self._errors[view_id] = dict(response.get("errors") or {})
            elif action == "update":
                self._replace(self._views[view_id], response["view"])
            elif action == "push" and stack:
                if len(stack) < MAX_STACK:
                    pushed = self._store(user_id, response["view"], bot, stack[0], stack[-1])
                    stack.append(pushed["id"])
            elif action == "clear":
                stack.clear()
            elif view_id in stack:
                # An empty 200 closes only the submitted view; the one below it shows again.
                del stack[stack.index(view_id):]

    def close(self, view_id: str) -> None:
        """Close a modal as the user's Cancel/X button does (it and those above it)."""
        with self._lock:
            stack = self._stacks.get(self._owner.get(view_id, ""), [])
            if view_id in stack:
                del stack[stack.index(view_id):]

    def stack(self, user_id: str) -> list[dict[str, Any]]:
        """Return the user's open modals, root first."""
        with self._lock:
            return [copy.deepcopy(self._views[v]) for v in self._stacks.get(user_id, [])]

    def home(self, user_id: str) -> dict[str, Any] | None:
        """Return the user's published home view, or None."""
        with self._lock:
            home_id = self._homes.get(user_id)
            return copy.deepcopy(self._views[home_id]) if home_id else None

    def get(self, view_id: str) -> dict[str, Any] | None:
        """Return a view by id (open or closed), or None."""
        with self._lock:
            return copy.deepcopy(self._views.get(view_id))

    def errors(self, view_id: str) -> dict[str, str]:
        """Return the field errors the app answered the last submission of this view with."""
        with self._lock:
            return dict(self._errors.get(view_id, {}))

    def _store(self, user_id: str, view: dict[str, Any], bot: Bot, root_view_id: str | None,
               previous_view_id: str | None) -> dict[str, Any]:
        external_id = view.get("external_id") or ""
        if external_id and any(v["external_id"] == external_id for v in self._views.values()):
            raise ApiError("duplicate_external_id")
        view_id = f"V{next(self._view_ids):08d}"
        record = {
            "id": view_id,
            "team_id": self._team_id,
            "type": view.get("type"),
            "external_id": external_id,
            "root_view_id": root_view_id or view_id,
            "previous_view_id": previous_view_id,
            "app_id": bot.app_id,
            "app_installed_team_id": self._team_id,
            "bot_id": bot.bot_id,
        }
        self._views[view_id] = record
        self._owner[view_id] = user_id
        self._replace(record, view)
        return record

    def _replace(self, record: dict[str, Any], view: dict[str, Any]) -> None:
        record.update({
            "title": view.get("title"),
            "submit": view.get("submit"),
            "close": view.get("close"),
            "blocks": with_block_ids(copy.deepcopy(view.get("blocks", []))),
            "private_metadata": view.get("private_metadata", ""),
            "callback_id": view.get("callback_id", ""),
            "state": {"values": {}},
            "hash": f"{int(self._clock())}.{secrets.token_hex(4)}",
            "clear_on_close": bool(view.get("clear_on_close", False)),
            "notify_on_close": bool(view.get("notify_on_close", False)),
        })
        if view.get("external_id"):
            record["external_id"] = view["external_id"]
