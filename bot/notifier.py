"""The Slack implementation of `leases.ports.Notifier`: DMs in one thread per lease,
approval cards in the approvals channel, card updates in place, and admin messages.

Called by the workflows' outbox (in a worker). Every method raises on failure, so the
outbox keeps the message and tries again later; 429s and 5xx are first retried by the
client's retry handlers, so a rate-limited message is sent once, after Retry-After. An admin
notice DMed to each admin fails only when none of them got it: a retry would DM again the
admins who did, and an admin who cannot be DMed (deactivated, say) would never let it pass.
One exception: an approval card's update that Slack refuses for good (the bot left the channel,
the channel is archived, the message is refused as written) is logged and dropped, because
the outbox keeps a lease's messages in order and a card that can never be rewritten would
hold back the requester's own messages ('approved', 'ready') behind it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from leases.ports import MessageRef, Notice

from .blocks import cards, notices
from .metrics import NOTICES, NOTICES_DROPPED

logger = logging.getLogger(__name__)

# Worth surfacing in the DM list too, not only inside the lease's thread.
BROADCAST = frozenset({"lease.active", "lease.expiry_warning", "lease.idle_warning", "lease.fallback_offered",
                       "lease.wait_expired", "lease.failed", "lease.denied"})
# chat.update cannot rewrite the card any more: post the outcome as a new message instead.
CARD_GONE = frozenset({"message_not_found", "cant_update_message", "edit_window_closed", "channel_not_found"})
# Errors of chat.update / chat.postMessage in the approvals channel that no retry can fix (Slack's
# method references): the channel is closed to the bot, or the message is refused as written.
# Rate limits, 5xx (internal_error, fatal_error, service_unavailable, update_failed) and
# token errors are left out: they pass, or are fixed once for every message, so they are raised
# and the outbox tries again.
CARD_FINAL = CARD_GONE | frozenset({
    "not_in_channel", "is_archived", "is_inactive", "restricted_action", "restricted_action_read_only_channel",
    "restricted_action_thread_only_channel", "access_denied", "no_permission", "ekm_access_denied",
    "team_access_not_granted", "team_not_found",
    "msg_too_long", "no_text", "invalid_blocks", "invalid_blocks_format", "block_mismatch",
    "invalid_attachments", "too_many_attachments", "invalid_arguments",
})


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
        """Rewrite the card with the outcome; if it cannot be edited, post the outcome beside it;
        if Slack refuses both for good, log it and return (the outcome is in the store)."""
        message = cards.decided_card(notice)
        try:
            self._client.chat_update(channel=card.channel, ts=card.ts, **message)
        except SlackApiError as exc:
            error = exc.response.get("error")
            if error not in CARD_FINAL:
                raise
            if error not in CARD_GONE:
                self._card_dropped(card, notice, method="chat.update", error=error)
                return
            logger.warning("notify.card_not_updated channel=%s ts=%s error=%s; posting the outcome instead",
                           card.channel, card.ts, error,
                           extra={"event": "notify.card_not_updated", "channel": card.channel})
            try:
                self._client.chat_postMessage(channel=card.channel, **message)
            except SlackApiError as post_exc:
                if post_exc.response.get("error") not in CARD_FINAL:
                    raise
                self._card_dropped(card, notice, method="chat.postMessage", error=post_exc.response.get("error"))
                return
        NOTICES.labels(notice.kind).inc()

    @staticmethod
    def _card_dropped(card: MessageRef, notice: Notice, *, method: str, error: str | None) -> None:
        lease_id = (notice.lease or {}).get("id")
        logger.error(
            "notify.card_dropped lease=%s kind=%s channel=%s ts=%s: %s failed with %s, which retrying cannot fix; "
            "the card keeps its old text (check that the bot is in the approvals channel)",
            lease_id, notice.kind, card.channel, card.ts, method, error,
            extra={"event": "notify.card_dropped", "lease_id": lease_id, "kind": notice.kind,
                   "channel": card.channel, "ts": card.ts, "method": method, "error": error},
        )
        NOTICES_DROPPED.labels(notice.kind, str(error)).inc()

    def to_admins(self, *, notice: Notice) -> None:
        """Post to the admin channel, or DM each admin when there is none; raise only when
        nobody got it (one admin who got it is enough: a retry would DM them again)."""
        message = notices.admin_message(notice)
        if self._admin_channel:
            self._client.chat_postMessage(channel=self._admin_channel, **message)
        else:
            self._dm_admins(notice, message)
        NOTICES.labels(notice.kind).inc()

    def _dm_admins(self, notice: Notice, message: dict[str, Any]) -> None:
        failures: list[Exception] = []
        for admin in self._admins:
            try:
                self._client.chat_postMessage(channel=admin, **message)
            except (SlackClientError, OSError) as exc:  # OSError: a connection refused or timed out
                failures.append(exc)
                error = exc.response.get("error") if isinstance(exc, SlackApiError) else f"{type(exc).__name__}: {exc}"
                logger.error(
                    "notify.admin_not_told admin=%s kind=%s error=%s: this admin was not DMed the notice, and is "
                    "not DMed it again unless no admin got it (check that the policy's admins.users are current)",
                    admin, notice.kind, error,
                    extra={"event": "notify.admin_not_told", "admin": admin, "kind": notice.kind, "error": error},
                )
        if failures and len(failures) == len(self._admins):
            raise failures[0]
