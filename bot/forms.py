"""Submitted modals parsed into typed models, with per-block errors for what cannot be read.

Only the shape of the input is checked here (a number, a duration); whether the request is
allowed is the policy's question, asked through workflows.api.validate.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from leases.policy import FieldError

from . import ids
from .parsing import typed_duration


@dataclass(frozen=True)
class RequestForm:
    namespace: str
    team: str
    tier: str
    units: int
    duration: timedelta | None
    reason: str


def _value(values: dict[str, Any], block_id: str) -> str | None:
    state = (values.get(block_id) or {}).get(ids.INPUT) or {}
    chosen = state.get("selected_option")
    if chosen:
        return chosen.get("value")
    value = state.get("value")
    return value.strip() if isinstance(value, str) else value


def metadata(view: dict[str, Any]) -> dict[str, Any]:
    """Return the view's private_metadata as a dict (empty when absent or not ours)."""
    try:
        data = json.loads(view.get("private_metadata") or "{}")
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def parse_request(view: dict[str, Any]) -> tuple[RequestForm | None, dict[str, str]]:
    """Return the form, or None and the errors keyed by block id."""
    values = (view.get("state") or {}).get("values") or {}
    errors: dict[str, str] = {}
    team = _value(values, ids.TEAM) or metadata(view).get("team") or ""
    raw_units = _value(values, ids.UNITS) or ""
    units = 0
    try:
        units = int(raw_units)
    except ValueError:
        errors[ids.UNITS] = "give a whole number of units, e.g. 1"
    raw_duration = _value(values, ids.DURATION)
    duration = None
    if raw_duration:
        try:
            duration = typed_duration(raw_duration)
        except ValueError as exc:
            errors[ids.DURATION] = str(exc)
    reason = _value(values, ids.REASON) or ""
    if not reason:
        errors[ids.REASON] = "say what the GPUs are for; approvers read it"
    if errors:
        return None, errors
    namespace = _value(values, ids.NAMESPACE) or ""
    tier = _value(values, ids.TIER) or ""
    return RequestForm(namespace, str(team), tier, units, duration, reason), {}


def block_errors(errors: tuple[FieldError, ...] | list[FieldError], view: dict[str, Any]) -> dict[str, str]:
    """Map the policy's field errors onto the modal's input blocks.

    A field without a block of its own (the requester's lease limit, the team when the
    form has no chooser) is shown on the namespace block, the first one, so nothing is lost.
    """
    present = {b.get("block_id") for b in view.get("blocks", []) if b.get("type") == "input"}
    shown: dict[str, list[str]] = {}
    for error in errors:
        block = error.field if error.field in present else ids.NAMESPACE
        shown.setdefault(block, []).append(error.message)
    return {block: "; ".join(messages) for block, messages in shown.items()}


def deny_reason(view: dict[str, Any]) -> tuple[str, str]:
    """Return (lease id, reason) from a submitted Deny modal."""
    values = (view.get("state") or {}).get("values") or {}
    return str(metadata(view).get("l") or ""), _value(values, ids.REASON) or ""
