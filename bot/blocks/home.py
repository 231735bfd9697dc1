"""The App Home tab: the user's leases with time left, and Extend / Release / Cancel buttons."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from workflows.api import LeaseSummary

from .. import ids
from ..buttons import LeaseButton
from .kit import Block, actions, button, context, divider, header, section, time_left, when

MAX_LEASES = 20  # keeps the view far below Slack's 100 blocks
RUNNING = ("active", "expiring")
WITHDRAWABLE = ("requested", "pending_approval", "approved", "waitlisted", "placing")


def _lease_blocks(lease: LeaseSummary, extensions: int, step: str) -> list[Block]:
    text = f"*`{lease.namespace}`* · {lease.units} × {lease.tier} · team {lease.team}\nstate *{lease.state}*"
    if lease.state in RUNNING:
        text += f" · {time_left(lease.time_left)} left (until {when(lease.expires_at)})"
    blocks: list[Block] = [section(text)]
    value = LeaseButton(lease.id).encode()
    if lease.state in RUNNING:
        blocks.append(actions(f"{ids.LEASE_ACTIONS_BLOCK}:{lease.id}", [
            button(f"Extend {step}", ids.EXTEND, LeaseButton(lease.id, extensions=extensions).encode(),
                   style="primary"),
            button("Release", ids.RELEASE, value, style="danger", confirm=(
                f"Release {lease.namespace}?", "The namespace and everything in it will be deleted.", "Release")),
        ]))
    elif lease.state in WITHDRAWABLE:
        blocks.append(actions(f"{ids.LEASE_ACTIONS_BLOCK}:{lease.id}", [
            button("Cancel request", ids.CANCEL, value, confirm=(
                f"Cancel {lease.namespace}?", "The request is withdrawn.", "Cancel request")),
        ]))
    return blocks


def home_view(leases: Sequence[LeaseSummary], *, extensions: Mapping[str, int], notice: str | None = None,
              step: str = "1d") -> dict[str, Any]:
    """Return the Home tab for a user's live leases (with an optional line about their last click)."""
    blocks: list[Block] = [header("Your GPU leases")]
    if notice:
        blocks.append(context(notice))
    blocks.append(actions("home_top", [button("Request GPUs", ids.HOME_REQUEST, "open", style="primary")]))
    if not leases:
        blocks.append(section("You hold no leases. Request one with the button above or `/gpu-namespace`."))
    for lease in list(leases)[:MAX_LEASES]:
        blocks += [divider(), *_lease_blocks(lease, extensions.get(lease.id, 0), step)]
    if len(leases) > MAX_LEASES:
        blocks.append(context(f"…and {len(leases) - MAX_LEASES} more; `/gpu-namespace list` shows all."))
    return {"type": "home", "blocks": blocks}
