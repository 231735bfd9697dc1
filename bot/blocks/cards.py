"""Approval cards in the approvals channel: a request (or an extension) with Approve / Deny,
and the same card rewritten in place with the outcome and who decided.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from leases.ports import Notice

from .. import ids
from ..buttons import LeaseButton
from .escaping import escape, notice_text
from .kit import Block, actions, button, context, section

OUTCOME_MARK = {"approved": "✅", "denied": "❌", "expired": "⌛", "cancelled": "↩️"}


def _request_fields(lease: Mapping[str, Any]) -> list[str]:
    return [
        f"*Requester*\n<@{lease.get('requester')}> ({lease.get('team')})",
        f"*Namespace*\n`{lease.get('namespace')}`",
        f"*Tier*\n{lease.get('tier')}: {lease.get('tier_display')}",
        f"*Units × duration*\n{lease.get('units')} × {lease.get('duration')}",
    ]


def _reason(lease: Mapping[str, Any]) -> str:
    reason = lease.get("reason")
    return f"*Reason*\n{escape(str(reason)) if reason else '_none given_'}"


def _usage_line(data: Mapping[str, Any], tier: str) -> str:
    quota = data.get("team_quota")
    used = data.get("team_used")
    team = (f"team: {used} of {quota} {tier} units with this request" if quota is not None
            else "team has no quota for this tier")
    free, capacity = data.get("pool_free"), data.get("pool_capacity")
    pool = (f"pool: {free} of {capacity} units free" if capacity is not None
            else "pool: capacity not known until the first placement")
    return f"📊 {team} · {pool}"


def approval_card(notice: Notice) -> dict[str, Any]:
    """Return the message asking approvers to decide a request (approval.requested)."""
    lease = notice.lease or {}
    data = notice.data or {}
    value = LeaseButton(str(lease.get("id"))).encode()
    blocks: list[Block] = [
        section(f"*GPU request* from <@{lease.get('requester')}>", fields=_request_fields(lease)),
        section(_reason(lease)),
        context(_usage_line(data, str(lease.get("tier")))),
        actions(ids.DECISION_BLOCK, [
            button("Approve", ids.APPROVE, value, style="primary"),
            button("Deny", ids.DENY, value, style="danger"),
        ]),
    ]
    return {"text": notice_text(notice), "blocks": blocks}


def decided_card(notice: Notice) -> dict[str, Any]:
    """Return the card as it reads after the decision: no buttons, the outcome and who decided."""
    lease = notice.lease or {}
    data = notice.data or {}
    outcome = str(data.get("outcome") or notice.kind.rsplit(".", 1)[-1])
    by = f" by <@{data['decided_by']}>" if data.get("decided_by") else ""
    reason = f": {escape(str(data['reason']))}" if data.get("reason") else ""
    line = f"{OUTCOME_MARK.get(outcome, '•')} *{outcome.capitalize()}*{by}{reason}"
    blocks: list[Block] = [
        section(f"*GPU request* from <@{lease.get('requester')}>", fields=_request_fields(lease)),
        section(_reason(lease)),
        section(line),
    ]
    return {"text": f"{lease.get('namespace')}: {notice_text(notice)}", "blocks": blocks}


def extension_card(notice: Notice) -> dict[str, Any]:
    """Return the message asking approvers to allow an extension past the self-service caps."""
    lease = notice.lease or {}
    data = notice.data or {}
    request = data.get("request")
    value = LeaseButton(str(lease.get("id")), extensions=int(lease.get("extensions") or 0),
                        by_seconds=int(data.get("by_seconds") or 0),
                        request=int(request) if request is not None else None).encode()
    blocks: list[Block] = [
        section(f"*Extension request* · {notice_text(notice)}", fields=_request_fields(lease)),
        actions(ids.DECISION_BLOCK, [
            button("Allow extension", ids.APPROVE_EXTENSION, value, style="primary"),
            button("Deny", ids.DENY_EXTENSION, value, style="danger"),
        ]),
    ]
    return {"text": notice_text(notice), "blocks": blocks}


def extension_decided(original: list[Block], line: str) -> dict[str, Any]:
    """Return an extension card with its buttons replaced by the outcome line."""
    kept = [b for b in original if b.get("type") != "actions"]
    return {"text": line, "blocks": [*kept, section(line)]}
