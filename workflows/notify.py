"""A Notifier that writes notices to the log: the embedded default without Slack, and tests.

It also keeps what it was told in memory (`sent`), so tests and the demo can read it back.
"""

from __future__ import annotations

import itertools
import logging
import threading
from dataclasses import dataclass, field

from leases.ports import MessageRef, Notice

logger = logging.getLogger("gpulease.notify")


@dataclass
class Sent:
    target: str
    to: str
    notice: Notice
    ref: MessageRef | None


@dataclass
class LoggingNotifier:
    """Logs every notice and remembers it; hands out message refs like a chat service."""

    sent: list[Sent] = field(default_factory=list)
    _ts: itertools.count = field(default_factory=lambda: itertools.count(1))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _ref(self, channel: str) -> MessageRef:
        return MessageRef(channel=channel, ts=f"{1_700_000_000 + next(self._ts)}.000100")

    def _record(self, target: str, to: str, notice: Notice, ref: MessageRef | None) -> None:
        with self._lock:
            self.sent.append(Sent(target, to, notice, ref))
        lease = (notice.lease or {}).get("id")
        logger.info(
            "notify %s to=%s lease=%s: %s",
            notice.kind,
            to,
            lease,
            notice.text,
            extra={"event": "notify.sent", "kind": notice.kind, "to": to, "lease_id": lease},
        )

    def to_requester(self, *, user: str, thread: MessageRef | None, notice: Notice) -> MessageRef:
        ref = thread or self._ref(f"D-{user}")
        self._record("requester", user, notice, ref)
        return ref

    def approval_card(self, *, channel: str | None, notice: Notice) -> MessageRef:
        ref = self._ref(channel or "approvals")
        self._record("approval_card", ref.channel, notice, ref)
        return ref

    def update_approval_card(self, *, card: MessageRef, notice: Notice) -> None:
        self._record("approval_update", card.channel, notice, card)

    def to_admins(self, *, notice: Notice) -> None:
        self._record("admins", "admins", notice, None)

    def kinds(self, target: str | None = None) -> list[str]:
        """Return the kinds of notices sent so far (to one target if given), in order."""
        with self._lock:
            return [s.notice.kind for s in self.sent if target is None or s.target == target]
