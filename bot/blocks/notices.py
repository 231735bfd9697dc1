"""Messages to a requester in the lease's DM thread, one builder for every notice kind.

The notice's text is the message; what a kind adds (kubectl snippet, receipt, fallback
tiers) is shown below it, and the notice's `actions` become buttons carrying the lease id.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from leases.ports import Notice

from .. import ids
from ..buttons import LeaseButton
from .escaping import notice_text
from .kit import Block, actions, button, context, section, when

ICONS = {
    "lease.approved": "✅", "lease.active": "🟢", "lease.pending_approval": "⏳", "lease.denied": "❌",
    "lease.waitlisted": "🕒", "lease.fallback_offered": "🔀", "lease.expiry_warning": "⚠️",
    "lease.idle_warning": "💤", "lease.extended": "➕", "lease.reclaimed": "🧾", "lease.failed": "💥",
    "lease.cancelled": "↩️", "lease.expired_unapproved": "⌛", "lease.reclaim_scheduled": "📅",
    "lease.wait_expired": "⌛", "lease.extension_denied": "🚫",
}


def _buttons(notice: Notice, lease: Mapping[str, Any], step: str) -> list[dict[str, Any]]:
    lease_id = str(lease.get("id"))
    namespace = lease.get("namespace")
    plain_value = LeaseButton(lease_id).encode()
    elements: list[dict[str, Any]] = []
    for action in notice.actions:
        if action == "extend":
            value = LeaseButton(lease_id, extensions=int(lease.get("extensions") or 0)).encode()
            elements.append(button(f"Extend {step}", ids.EXTEND, value, style="primary"))
        elif action == "release":
            elements.append(button("Release now", ids.RELEASE, plain_value, style="danger", confirm=(
                f"Release {namespace}?", "The namespace and everything in it will be deleted.", "Release")))
        elif action == "cancel":
            elements.append(button("Cancel request", ids.CANCEL, plain_value, confirm=(
                f"Cancel {namespace}?", "The request is withdrawn.", "Cancel request")))
        elif action == "mark_busy":
            elements.append(button("It's in use", ids.MARK_BUSY, plain_value))
        elif action == "accept_fallback":
            for n, tier in enumerate((notice.data or {}).get("tiers") or []):
                value = LeaseButton(lease_id, tier=str(tier)).encode()
                elements.append(button(f"Take {tier}", f"{ids.ACCEPT_FALLBACK}:{n}", value))
    return elements


def _details(notice: Notice, lease: Mapping[str, Any]) -> list[Block]:
    data = notice.data or {}
    if notice.kind == "lease.active" and data.get("kubectl"):
        return [section(f"```{data['kubectl']}```")]
    if notice.kind == "lease.reclaimed":
        gpu_hours = data.get("gpu_hours")
        reserved = (
            f"*GPU-hours reserved*\n{gpu_hours}" if gpu_hours is not None
            # A tier taken out of the policy: what one unit is in GPUs is not known.
            else f"*Hours reserved*\n{data.get('hours')} (GPU-hours unknown: the tier left the policy)"
        )
        return [section("*Receipt*", fields=[
            reserved,
            f"*Units*\n{lease.get('units')} × {lease.get('tier')}",
            f"*From*\n{when(data.get('start'))}",
            f"*To*\n{when(data.get('end'))}",
            f"*Extensions*\n{data.get('extensions', 0)}",
        ])]
    return []


def requester_message(notice: Notice, *, extend_step: str = "1d") -> dict[str, Any]:
    """Return text and blocks of a DM about a lease."""
    lease = notice.lease or {}
    icon = ICONS.get(notice.kind, "•")
    text = notice_text(notice)
    blocks: list[Block] = [section(f"{icon} {text}"), *_details(notice, lease)]
    facts = [f"`{lease.get('namespace')}`", f"{lease.get('units')} × {lease.get('tier')}",
             f"state *{lease.get('state')}*"]
    if lease.get("expires_at"):
        facts.append(f"until {when(lease.get('expires_at'))}")
    if lease:
        blocks.append(context(" · ".join(facts)))
    elements = _buttons(notice, lease, extend_step)
    if elements:
        blocks.append(actions(ids.LEASE_ACTIONS_BLOCK, elements))
    return {"text": text, "blocks": blocks}


def admin_message(notice: Notice) -> dict[str, Any]:
    """Return a message for the platform admins."""
    text = notice_text(notice)
    return {"text": text, "blocks": [section(f"🛠️ *{notice.kind}* · {text}")]}
