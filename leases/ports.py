"""Ports: what the domain and the workflows need from the outside, as Protocols.

`Notifier` is how workflows tell people things (Slack in production, a log embedded); the
implementations live in bot/ and workflows/, wired in gpulease/. Workflows never import bot.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class MessageRef:
    """Where a message landed, so later messages can reply in its thread or update it."""

    channel: str
    ts: str


@dataclass(frozen=True)
class Notice:
    """Something to tell someone about a lease (or the platform), independent of Slack.

    `kind` names the event (e.g. `lease.active`, `lease.expiry_warning`); `lease` is a plain
    snapshot of the lease's fields; `data` carries what the event adds (kubectl snippet,
    fallback tiers, receipt figures); `actions` names the buttons the message should carry
    (`extend`, `release`, `accept_fallback`, `approve`, `deny`).
    """

    kind: str
    text: str
    lease: Mapping[str, Any] | None = None
    data: Mapping[str, Any] | None = None
    actions: tuple[str, ...] = ()


class Notifier(Protocol):
    """Delivers notices. Each method may raise; the caller's outbox retries later."""

    def to_requester(self, *, user: str, thread: MessageRef | None, notice: Notice) -> MessageRef:
        """Tell a requester, in the lease's thread when there is one; return the message."""
        ...

    def approval_card(self, *, channel: str | None, notice: Notice) -> MessageRef:
        """Post an approval card with Approve / Deny buttons; return where it landed."""
        ...

    def update_approval_card(self, *, card: MessageRef, notice: Notice) -> None:
        """Rewrite an approval card in place with the outcome and who decided."""
        ...

    def to_admins(self, *, notice: Notice) -> None:
        """Tell the platform admins (orphans, drift, failed moves)."""
        ...
