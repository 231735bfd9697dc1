"""What the dev page may send, checked: request bodies, and a modal's fields as Slack's state.

Everything a browser sends is refused with `BadInput` (a message a person can act on) unless it
is the expected type and size. A modal's fields are also checked the way Slack's own client
checks them before the app ever sees a submission (required fields, lengths, numbers), so the
bot receives only what Slack would send it. Imported by gpulease.dev only.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from sandbox.slack import payloads

MAX_TEXT = 3000  # Slack's own cap on a plain_text_input


class BadInput(Exception):
    """The request cannot be done as sent; the message says why."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def string(body: Mapping[str, Any], name: str, *, limit: int = 200, required: bool = True) -> str:
    """Return a string field of a JSON body, refusing other types and overlong values."""
    value = body.get(name)
    if value is None or value == "":
        if required:
            raise BadInput(f"'{name}' is required")
        return ""
    if not isinstance(value, str):
        raise BadInput(f"'{name}' must be a string")
    if len(value) > limit:
        raise BadInput(f"'{name}' is longer than {limit} characters")
    return value


def choice(body: Mapping[str, Any], name: str, allowed: Mapping[str, Any] | tuple[str, ...]) -> str:
    """Return a field that must be one of `allowed`."""
    value = string(body, name)
    if value not in allowed:
        raise BadInput(f"'{name}' must be one of {', '.join(allowed)}; got {value!r}")
    return value


def _number(element: Mapping[str, Any], raw: str) -> str | None:
    """Return Slack's error for a number input's text, or None when it is a valid number."""
    try:
        number = Decimal(raw)
    except InvalidOperation:
        return "Enter a number."
    if not number.is_finite():
        return "Enter a number."
    if not element.get("is_decimal_allowed") and number != number.to_integral_value():
        return "Enter a whole number."
    low, high = element.get("min_value"), element.get("max_value")
    if low is not None and number < Decimal(str(low)):
        return f"Enter a number of at least {low}."
    if high is not None and number > Decimal(str(high)):
        return f"Enter a number no greater than {high}."
    return None


def _text(element: Mapping[str, Any], raw: str) -> str | None:
    longest = min(int(element.get("max_length") or MAX_TEXT), MAX_TEXT)
    if len(raw) > longest:
        return f"Must be {longest} characters or fewer."
    if element.get("min_length") and len(raw) < int(element["min_length"]):
        return f"Must be at least {element['min_length']} characters."
    return None


def modal_state(view: Mapping[str, Any], raw: Any) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """Turn the page's {block_id: text} into view.state.values, with Slack's own field errors."""
    if not isinstance(raw, dict):
        raise BadInput("'values' must be an object of block_id: text")
    inputs = {b.get("block_id"): b for b in view.get("blocks") or [] if b.get("type") == "input"}
    unknown = sorted(set(raw) - set(inputs))
    if unknown:
        raise BadInput(f"the modal has no input block {', '.join(map(repr, unknown))}")
    values: dict[str, dict[str, Any]] = {}
    errors: dict[str, str] = {}
    for block_id, item in inputs.items():
        text = raw.get(block_id)
        if text is not None and not isinstance(text, str):
            raise BadInput(f"the value of '{block_id}' must be a string")
        text = text or None
        element = item.get("element") or {}
        kind, action_id = element.get("type"), element.get("action_id", "")
        if text is None:
            if not item.get("optional"):
                errors[block_id] = "Please fill out this field." if "input" in str(kind) else "Please select an option."
            state = None
        elif kind == "plain_text_input":
            problem = _text(element, text)
            if problem:
                errors[block_id] = problem
            state = payloads.plain_text_input(text)
        elif kind == "number_input":
            problem = _number(element, text)
            if problem:
                errors[block_id] = problem
            state = payloads.number_input(text)
        elif kind in ("radio_buttons", "static_select"):
            option = next((o for o in element.get("options") or [] if o.get("value") == text), None)
            if option is None:
                raise BadInput(f"'{text}' is not one of the options of '{block_id}'")
            label = (option.get("text") or {}).get("text")
            helper = payloads.radio_buttons if kind == "radio_buttons" else payloads.static_select
            state = helper(text, label)
        else:
            raise BadInput(f"the dev page cannot fill a {kind} input ('{block_id}')")
        if state is None:
            state = _empty(str(kind))
        values[block_id] = {action_id: state}
    return values, errors


def _empty(kind: str) -> dict[str, Any]:
    if kind == "number_input":
        return payloads.number_input(None)
    if kind == "radio_buttons":
        return payloads.radio_buttons(None)
    if kind == "static_select":
        return payloads.static_select(None)
    return payloads.plain_text_input(None)
