"""Answers to slash commands and button clicks, shown only to the person who asked."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from leases.reservations import PoolUsage
from workflows.api import LeaseSummary

from .escaping import escape
from .kit import (
    MESSAGE_BLOCKS_MAX,
    Block,
    code_sections,
    context,
    header,
    line_sections,
    section,
    time_left,
    when,
)

NAMESPACE_USAGE = (
    "*/gpu-namespace* — open the request form\n"
    "*/gpu-namespace list* — your leases\n"
    "*/gpu-namespace status NS* — one lease\n"
    "*/gpu-namespace extend NS 3d* — extend a running lease\n"
    "*/gpu-namespace release NS* — give it back now\n"
    "*/gpu-namespace help* — this text"
)
ADMIN_USAGE = (
    "*/gpu-admin capacity* — units per pool\n"
    "*/gpu-admin leases* — every live lease\n"
    "*/gpu-admin revoke NS [reason]* — reclaim now\n"
    "*/gpu-admin reclaim NS at 2026-03-05T18:00* (UTC, or +6h) — reclaim later\n"
    "*/gpu-admin drain NODE* — cordon a node so it empties"
)


def text(message: str) -> dict[str, Any]:
    """Return a one-line answer."""
    return {"text": message}


def ending(namespace: str, state: str, *, revoked: bool = False) -> str:
    """Return the answer to a release or revoke: a request that had not started yet is cancelled
    at once (`state` cancelled), a running lease is reclaimed, with a receipt when it is gone."""
    if state == "cancelled":
        told = "; its requester was told" if revoked else ""
        return f"↩️ `{namespace}` was cancelled: it had not started yet{told}."
    if revoked:
        return f"🧹 Revoking `{namespace}`; its owner is told when it is gone."
    return f"🧹 Releasing `{namespace}`; you will get a receipt when it is gone."


def usage(usage_text: str, problem: str | None = None) -> dict[str, Any]:
    """Return the usage of a command, after what was wrong with the last one (which may quote
    what the user typed, so it is escaped)."""
    blocks: list[Block] = []
    if problem:
        problem = escape(problem)
        blocks.append(section(f"⚠️ {problem}"))
    blocks.append(section(usage_text))
    return {"text": problem or usage_text, "blocks": blocks}


def _lease_line(lease: LeaseSummary, *, owner: bool = False) -> str:
    who = f"<@{lease.requester}> · " if owner else ""
    line = f"`{lease.namespace}` · {who}{lease.units} × {lease.tier} · *{lease.state}*"
    if lease.time_left is not None:
        line += f" · {time_left(lease.time_left)} left"
    return line


def lease_list(leases: Sequence[LeaseSummary], *, title: str, owner: bool = False,
               empty: str = "You hold no leases. `/gpu-namespace` opens the request form.") -> dict[str, Any]:
    """Return leases one per line (at most 40, the rest counted)."""
    if not leases:
        return text(empty)
    lines = [_lease_line(lease, owner=owner) for lease in leases[:40]]
    blocks: list[Block] = [header(title), *line_sections(lines)]
    if len(leases) > 40:
        blocks.append(context(f"…and {len(leases) - 40} more"))
    return {"text": f"{title}: {len(leases)}", "blocks": blocks}


def lease_status(lease: LeaseSummary) -> dict[str, Any]:
    """Return one lease in detail."""
    fields = [
        f"*Requester*\n<@{lease.requester}> ({lease.team})",
        f"*State*\n{lease.state}",
        f"*Tier*\n{lease.units} × {lease.tier}",
        f"*Cluster*\n{lease.cluster}",
        f"*Expires*\n{when(lease.expires_at)}",
        f"*Time left*\n{time_left(lease.time_left)}",
    ]
    return {"text": f"{lease.namespace}: {lease.state}",
            "blocks": [section(f"*`{lease.namespace}`*", fields=fields)]}


def capacity(pools: Sequence[PoolUsage]) -> dict[str, Any]:
    """Return capacity, reserved and free units per pool, as tables of whole rows (the pools
    past Slack's block limit counted)."""
    if not pools:
        return text("No pool capacity recorded yet: it is synced from the cluster at the first placement.")
    head = f"{'cluster':<12} {'tier':<14} {'capacity':>8} {'draining':>8} {'reserved':>8} {'free':>6}"
    rows = [
        f"{p.cluster:<12} {p.tier:<14} {p.capacity:>8} {p.draining:>8} {p.reserved:>8} {p.free:>6}" for p in pools
    ]
    # Room for the header and the count of pools not shown.
    tables, shown = code_sections(rows, head=head, max_blocks=MESSAGE_BLOCKS_MAX - 2)
    blocks: list[Block] = [header("GPU pools"), *tables]
    if shown < len(rows):
        blocks.append(context(f"…and {len(rows) - shown} more"))
    return {"text": "GPU pools", "blocks": blocks}
