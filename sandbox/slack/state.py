"""Conversations the sandbox keeps: messages per channel and thread, ephemerals, DMs.

Messages are stored with every update applied, in posting order; replies carry
`thread_ts` and their parent gains `reply_count` and `latest_reply`, as Slack shows them.
Message timestamps come from the injected clock, are unique and always increase. Part of
sandbox.slack.
"""

from __future__ import annotations

import copy
import threading
from dataclasses import dataclass
from typing import Any

from .clock import Clock
from .directory import Directory, dm_channel_id
from .errors import ApiError


@dataclass(frozen=True)
class Bot:
    """The app identity a token stands for (what auth.test reports)."""

    user_id: str = "U0GPULEASE"
    bot_id: str = "B0GPULEASE"
    app_id: str = "A0GPULEASE"
    name: str = "gpulease"


class Conversations:
    """Channels, DMs and the messages in them, safe to use from several threads."""

    def __init__(self, directory: Directory, clock: Clock) -> None:
        self._directory = directory
        self._clock = clock
        self._lock = threading.RLock()
        self._messages: dict[str, list[dict[str, Any]]] = {}
        self._ephemerals: list[dict[str, Any]] = []
        self._dms: dict[str, str] = {}  # D-channel id -> user id
        self._last_ts = (0, 0)

    def reset(self) -> None:
        """Forget every message, ephemeral and opened DM."""
        with self._lock:
            self._messages.clear()
            self._ephemerals.clear()
            self._dms.clear()

    def next_ts(self) -> str:
        """Return a fresh message timestamp, later than every one before it."""
        with self._lock:
            seconds = int(self._clock())
            last_seconds, last_seq = self._last_ts
            # The clock may stand still (a ManualClock) or step back; ts must still increase.
            self._last_ts = (seconds, 1) if seconds > last_seconds else (last_seconds, last_seq + 1)
            return f"{self._last_ts[0]}.{self._last_ts[1]:06d}"

    def open_dm(self, user_id: str) -> tuple[str, bool]:
        """Return the DM channel with the user and whether it was already open."""
        if self._directory.user(user_id) is None:
            raise ApiError("user_not_found")
        channel_id = dm_channel_id(user_id)
        with self._lock:
            already = channel_id in self._dms
            self._dms[channel_id] = user_id
            return channel_id, already

    def dm_user(self, channel_id: str) -> str | None:
        """Return the user of an opened DM channel, or None."""
        with self._lock:
            return self._dms.get(channel_id)

    def resolve(self, ref: str | None) -> str:
        """Return the channel id for an id, #name or user id, or refuse with channel_not_found."""
        if not ref:
            raise ApiError("channel_not_found")
        channel = self._directory.channel(ref)
        if channel is not None:
            return channel.id
        if ref[0] in "UW" and self._directory.user(ref) is not None:
            # Slack delivers a message addressed to a user id into the app's DM with them.
            return self.open_dm(ref)[0]
        if ref[0] == "D":
            with self._lock:
                if ref in self._dms:
                    return ref
            user_id = "U" + ref[1:]
            if self._directory.user(user_id) is not None:
                return self.open_dm(user_id)[0]
        raise ApiError("channel_not_found")

    def is_member(self, channel_id: str, user_id: str) -> bool:
        """Say whether the user can see the channel (a public channel or their DM)."""
        channel = self._directory.channel(channel_id)
        if channel is not None:
            return self._directory.is_member(channel, user_id)
        return self.dm_user(channel_id) == user_id

    def post(self, channel_id: str, message: dict[str, Any]) -> dict[str, Any]:
        """Store a message (a reply when it has thread_ts) and return the stored copy."""
        with self._lock:
            stored = {"type": "message", **message, "ts": self.next_ts()}
            log = self._messages.setdefault(channel_id, [])
            thread_ts = stored.get("thread_ts")
            if thread_ts:
                parent = self._find(log, thread_ts)
                if parent is not None:
                    parent.setdefault("thread_ts", parent["ts"])
                    parent["reply_count"] = parent.get("reply_count", 0) + 1
                    parent["latest_reply"] = stored["ts"]
                    users = parent.setdefault("reply_users", [])
                    author = stored.get("user")
                    if author and author not in users:
                        users.append(author)
            log.append(stored)
            return copy.deepcopy(stored)

    def update(self, channel_id: str, ts: str, changes: dict[str, Any], editor: str, *,
               replace_content: bool = False) -> dict[str, Any]:
        """Apply changes to a stored message and return it; refuse unknown messages.

        replace_content drops text, blocks and attachments not in `changes` (a response_url
        replace_original swaps the whole message, where chat.update keeps what it is not sent).
        """
        with self._lock:
            message = self._find(self._messages.get(channel_id, []), ts)
            if message is None:
                raise ApiError("message_not_found")
            if replace_content:
                for key in ("text", "blocks", "attachments"):
                    message.pop(key, None)
            message.update(changes)
            message["edited"] = {"user": editor, "ts": self.next_ts()}
            return copy.deepcopy(message)

    def delete(self, channel_id: str, ts: str) -> None:
        """Remove a stored message (response_url delete_original)."""
        with self._lock:
            log = self._messages.get(channel_id, [])
            log[:] = [m for m in log if m["ts"] != ts]

    def get(self, channel_id: str, ts: str) -> dict[str, Any] | None:
        """Return a copy of one stored message, or None."""
        with self._lock:
            found = self._find(self._messages.get(channel_id, []), ts)
            return copy.deepcopy(found)

    def messages(self, channel_id: str, thread_ts: str | None = None) -> list[dict[str, Any]]:
        """Return the channel's top-level messages, or the replies of one thread (parent excluded)."""
        with self._lock:
            log = self._messages.get(channel_id, [])
            if thread_ts is None:
                chosen = [
                    m for m in log
                    if m.get("thread_ts") in (None, m["ts"]) or m.get("reply_broadcast")
                ]
            else:
                chosen = [m for m in log if m.get("thread_ts") == thread_ts and m["ts"] != thread_ts]
            return copy.deepcopy(chosen)

    def channels(self) -> dict[str, list[dict[str, Any]]]:
        """Return every channel with messages, each with its whole log (replies included)."""
        with self._lock:
            return copy.deepcopy(self._messages)

    def post_ephemeral(self, ephemeral: dict[str, Any]) -> dict[str, Any]:
        """Record a message only one user sees and return it with its ts."""
        with self._lock:
            stored = {"type": "message", **ephemeral, "ts": self.next_ts()}
            self._ephemerals.append(stored)
            return copy.deepcopy(stored)

    def ephemerals(self, channel_id: str | None = None, user: str | None = None) -> list[dict[str, Any]]:
        """Return ephemeral messages, optionally only those in a channel or for a user."""
        with self._lock:
            return copy.deepcopy([
                e for e in self._ephemerals
                if (channel_id is None or e["channel"] == channel_id) and (user is None or e["user"] == user)
            ])

    @staticmethod
    def _find(log: list[dict[str, Any]], ts: str) -> dict[str, Any] | None:
        return next((m for m in log if m["ts"] == ts), None)
