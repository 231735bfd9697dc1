"""response_url stand-ins: the URLs the sandbox hands out and what posting to them does.

Slack gives every slash command and message action a response_url, usable up to 5 times
within 30 minutes. Posting JSON to it here behaves like Slack:
- `replace_original: true` rewrites the message the action came from, `delete_original`
  removes it;
- `response_type: "in_channel"` posts a new message visible to all;
- otherwise the message is ephemeral, shown only to the user who acted.
The immediate HTTP answer to a slash command is shown the same way; the signing client
reports it with `?immediate=1`, which does not count as a use. Part of sandbox.slack.
"""

from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass
from typing import Any

from .clock import Clock
from .errors import ApiError
from .state import Bot, Conversations

MAX_USES = 5
TTL_S = 30 * 60


@dataclass
class _Hook:
    channel: str
    user_id: str
    message_ts: str | None
    issued_at: float
    uses: int = 0


class ResponseUrls:
    """Issued response URLs and the delivery of what is posted to them."""

    def __init__(self, conversations: Conversations, clock: Clock) -> None:
        self._conversations = conversations
        self._clock = clock
        self._hooks: dict[str, _Hook] = {}
        self._lock = threading.Lock()

    def reset(self) -> None:
        """Forget every issued URL."""
        with self._lock:
            self._hooks.clear()

    def issue(self, *, channel: str, user_id: str, message_ts: str | None = None) -> str:
        """Register a hook for an interaction in `channel` and return its id (the URL's last part)."""
        hook_id = secrets.token_hex(12)
        with self._lock:
            self._hooks[hook_id] = _Hook(channel, user_id, message_ts, self._clock())
        return hook_id

    def deliver(self, hook_id: str, payload: Any, bot: Bot, *, immediate: bool = False) -> dict[str, Any]:
        """Apply a posted message; refuse unknown, used-up or expired URLs and bad payloads."""
        with self._lock:
            hook = self._hooks.get(hook_id)
            if hook is None:
                raise ApiError("no_service", status=404)
            if not immediate:
                # Not confirmed from Slack's docs: the names of these two refusals.
                if self._clock() - hook.issued_at > TTL_S:
                    raise ApiError("expired_url", status=404)
                if hook.uses >= MAX_USES:
                    raise ApiError("used_url", status=404)
                hook.uses += 1
        if not isinstance(payload, dict):
            raise ApiError("invalid_payload", status=400)
        return self._apply(hook, payload, bot)

    def _apply(self, hook: _Hook, payload: dict[str, Any], bot: Bot) -> dict[str, Any]:
        conversations = self._conversations
        if payload.get("delete_original") and hook.message_ts:
            conversations.delete(hook.channel, hook.message_ts)
            return {"effect": "deleted", "channel": hook.channel, "ts": hook.message_ts}
        content = {k: payload[k] for k in ("text", "blocks", "attachments") if k in payload}
        if not content.get("text") and not content.get("blocks") and not content.get("attachments"):
            raise ApiError("no_text", status=400)
        if payload.get("replace_original") and hook.message_ts:
            message = conversations.update(hook.channel, hook.message_ts, content, bot.user_id,
                                           replace_content=True)
            return {"effect": "replaced", "channel": hook.channel, "message": message}
        if payload.get("response_type") == "in_channel":
            message = conversations.post(hook.channel, {
                **content, "user": bot.user_id, "bot_id": bot.bot_id, "app_id": bot.app_id,
                **({"thread_ts": payload["thread_ts"]} if payload.get("thread_ts") else {}),
            })
            return {"effect": "posted", "channel": hook.channel, "message": message}
        ephemeral = conversations.post_ephemeral({
            **content, "channel": hook.channel, "user": hook.user_id, "bot_id": bot.bot_id, "source": "response_url",
        })
        return {"effect": "ephemeral", "channel": hook.channel, "message": ephemeral}
