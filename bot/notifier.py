"""The Slack implementation of `leases.ports.Notifier`: DMs in one thread per lease,
approval cards in the approvals channel, card updates in place, and admin messages.

Called by the workflows' outbox (in a worker). Every method raises on failure, so the
outbox keeps the message and tries again later; 429s and 5xx are first retried by the
client's retry handlers, so a rate-limited message is sent once, after Retry-After.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from leases.ports import MessageRef, Notice

from .blocks import cards, notices
from .metrics import NOTICES

logger = logging.getLogger(__name__)

# Worth surfacing in the DM list too, not only inside the lease's thread.
BROADCAST = frozenset({"lease.active", "lease.expiry_warning", "lease.idle_warning", "lease.fallback_offered",
                       "lease.wait_expired", "lease.failed", "lease.denied"})
# chat.update cannot rewrite the card any more: post the outcome as a new message instead.
CARD_GONE = frozenset({"message_not_found", "cant_update_message", "edit_window_closed", "channel_not_found"})


class SlackNotifier:
    """Delivers notices through one WebClient (the one with the retry handlers)."""

    def __init__(self, client: WebClient, *, approvals_channel: str | None, admin_channel: str | None = None,
                 admins: Sequence[str] = (), extend_step: str = "1d") -> None:
        self._client = client
        self._approvals_channel = approvals_channel
        self._admin_channel = admin_channel
        self._admins = tuple(admins)
        self._extend_step = extend_step

    def to_requester(self, *, user: str, thread: MessageRef | None, notice: Notice) -> MessageRef:
        """DM the requester; the lease's first message starts the thread the rest reply in."""
        message = notices.requester_message(notice, extend_step=self._extend_step)
        if thread is None:
            channel = self._client.conversations_open(users=user)["channel"]["id"]
            reply = self._client.chat_postMessage(channel=channel, **message)
        else:
            reply = self._client.chat_postMessage(channel=thread.channel, thread_ts=thread.ts,
                                                  reply_broadcast=notice.kind in BROADCAST, **message)
        NOTICES.labels(notice.kind).inc()
        return MessageRef(channel=reply["channel"], ts=thread.ts if thread else reply["ts"])

    def approval_card(self, *, channel: str | None, notice: Notice) -> MessageRef:
        """Post a request (or extension) card with its decision buttons."""
        target = channel or self._approvals_channel
        if not target:
            raise LookupError("no approvals channel: set approvals.channel in the policy")
        message = cards.extension_card(notice) if notice.kind == "extension.requested" else cards.approval_card(notice)
        reply = self._client.chat_postMessage(channel=target, **message)
        NOTICES.labels(notice.kind).inc()
        return MessageRef(channel=reply["channel"], ts=reply["ts"])

    def update_approval_card(self, *, card: MessageRef, notice: Notice) -> None:
        """Rewrite the card with the outcome; if it cannot be edited, post the outcome beside it."""
        message = cards.decided_card(notice)
        try:
            self._client.chat_update(channel=card.channel, ts=card.ts, **message)
        except SlackApiError as exc:
            if exc.response.get("error") not in CARD_GONE:
                raise
            logger.warning("notify.card_not_updated channel=%s ts=%s error=%s; posting the outcome instead",
                           card.channel, card.ts, exc.response.get("error"),
                           extra={"event": "notify.card_not_updated", "channel": card.channel})
            self._client.chat_postMessage(channel=card.channel, **message)
        NOTICES.labels(notice.kind).inc()

    def to_admins(self, *, notice: Notice) -> None:
        """Post to the admin channel, or DM each admin when there is none."""
        message = notices.admin_message(notice)
        for channel in ([self._admin_channel] if self._admin_channel else self._admins):
            self._client.chat_postMessage(channel=channel, **message)
        NOTICES.labels(notice.kind).inc()
