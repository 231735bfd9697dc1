"""Block Kit as HTML for the dev page: messages, threads, App Home and modals as forms.

Text goes through the demo report's mrkdwn helpers; what this adds is what a person must act
on: buttons that carry a reference to the surface they sit in (never the value, which the
server reads back from the stored block), and input blocks as form fields with their errors.
Imported by gpulease.dev only.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from gpulease.demo.report import block_text, mrkdwn

Ref = Mapping[str, str]  # which surface a button is in: {"surface": "message", "channel": ..., "ts": ...}
# Slack's angle-bracket syntax, shown as Slack shows it: dates and links by their label.
_LABELLED = re.compile(r"<(?:!date\^[^|>]*|https?://[^|>]*|#C[0-9A-Z]+)\|([^>]*)>")
_BARE_LINK = re.compile(r"<(https?://[^|>]+)>")


def text(value: str) -> str:
    """Render mrkdwn as HTML, with ``` fences as preformatted blocks."""
    parts = _BARE_LINK.sub(r"\1", _LABELLED.sub(r"\1", value)).split("```")
    out = []
    for n, part in enumerate(parts):
        if n % 2 and n < len(parts) - 1:
            out.append(f"<pre>{html.escape(part.strip(chr(10)))}</pre>")
        else:
            out.append(mrkdwn(part if n % 2 == 0 else "```" + part))
    return "".join(out)


def _attr(value: str) -> str:
    return html.escape(value, quote=True)


def _plain(obj: Any) -> str:
    return obj.get("text", "") if isinstance(obj, dict) else ""


def button(element: Mapping[str, Any], block_id: str | None, ref: Ref) -> str:
    """Render one button; clicking it posts `ref` with the element's ids to /api/click."""
    click = {**ref, "block_id": block_id or "", "action_id": element.get("action_id", "")}
    style = element.get("style", "")
    confirm = element.get("confirm")
    question = f' data-confirm="{_attr(_plain(confirm.get("title")) + chr(10) + _plain(confirm.get("text")))}"' \
        if isinstance(confirm, dict) else ""
    return (f'<button type="button" class="btn {_attr(style)}" data-click="{_attr(json.dumps(click))}"{question}>'
            f"{html.escape(_plain(element.get('text')))}</button>")


def _element(element: Any, block_id: str | None, ref: Ref) -> str:
    if not isinstance(element, dict):
        return ""
    if element.get("type") == "button":
        return button(element, block_id, ref)
    return f'<span class="muted">[{html.escape(str(element.get("type")))} not shown]</span>'


def block(item: Mapping[str, Any], ref: Ref) -> str:
    """Render one non-input block."""
    kind = item.get("type")
    block_id = item.get("block_id")
    if kind == "header":
        return f"<h4>{html.escape(_plain(item.get('text')))}</h4>"
    if kind == "divider":
        return "<hr>"
    if kind == "actions":
        return '<div class="actions">' + "".join(_element(e, block_id, ref) for e in item.get("elements") or []) + "</div>"
    if kind == "context":
        return '<div class="context">' + " · ".join(text(t) for t in block_text(dict(item)) if t) + "</div>"
    if kind == "section":
        body = text(_plain(item.get("text"))) if isinstance(item.get("text"), dict) else ""
        fields = "".join(f"<div>{text(_plain(f))}</div>" for f in item.get("fields") or [])
        if fields:
            body += f'<div class="fields">{fields}</div>'
        if item.get("accessory"):
            body += _element(item["accessory"], block_id, ref)
        return f'<div class="section">{body}</div>'
    return f'<div class="muted">[{html.escape(str(kind))} block]</div>'


def blocks(items: Iterable[Mapping[str, Any]], ref: Ref) -> str:
    """Render a list of blocks (input blocks excepted: see `modal`)."""
    return "".join(block(b, ref) for b in items if b.get("type") != "input")


def message(msg: Mapping[str, Any], ref: Ref, *, reply: bool = False) -> str:
    """Render a message: its blocks (or its text when it has none), time and author."""
    body = blocks(msg.get("blocks") or [], ref) or text(msg.get("text", ""))
    author = "gpulease" if msg.get("bot_id") else str(msg.get("user", ""))
    edited = " · edited" if msg.get("edited") else ""
    if not reply and msg.get("thread_ts") not in (None, msg.get("ts")):
        edited += " · a thread reply, also sent to the conversation"
    return (f'<div class="msg{" reply" if reply else ""}"><div class="meta"><b>{html.escape(author)}</b> '
            f'<span class="ts">{_time(msg.get("ts"))}{edited}</span></div>{body}</div>')


def _time(ts: Any) -> str:
    try:
        return datetime.fromtimestamp(float(ts), UTC).strftime("%H:%M:%S")
    except (TypeError, ValueError, OverflowError):
        return html.escape(str(ts))


def conversation(threads: list[tuple[dict[str, Any], list[dict[str, Any]]]], channel: str, empty: str) -> str:
    """Render top-level messages each followed by its thread replies."""
    if not threads:
        return f'<p class="muted">{html.escape(empty)}</p>'
    out = []
    for parent, replies in threads:
        out.append(message(parent, {"surface": "message", "channel": channel, "ts": parent["ts"]}))
        out.extend(message(r, {"surface": "message", "channel": channel, "ts": r["ts"]}, reply=True)
                   for r in replies)
    return "".join(out)


def ephemerals(items: list[dict[str, Any]]) -> str:
    """Render the answers only this user saw, newest last."""
    if not items:
        return '<p class="muted">Nothing yet: type a slash command above.</p>'
    return "".join(message(e, {"surface": "ephemeral", "ts": e["ts"]}) for e in items)


def home(view: Mapping[str, Any] | None) -> str:
    """Render the App Home tab, or say it was never opened."""
    if view is None:
        return '<p class="muted">Not published yet: press "Open App Home".</p>'
    return blocks(view.get("blocks") or [], {"surface": "home", "view_id": view.get("id", "")})


def _field(item: Mapping[str, Any], value: str | None, error: str | None) -> str:
    block_id = str(item.get("block_id", ""))
    element = item.get("element") or {}
    kind = element.get("type")
    name = _attr(block_id)
    label = html.escape(_plain(item.get("label"))) + (' <span class="muted">(optional)</span>' if item.get("optional") else "")
    placeholder = f' placeholder="{_attr(_plain(element.get("placeholder")))}"' if element.get("placeholder") else ""
    initial = value if value is not None else element.get("initial_value")
    if kind == "plain_text_input" and element.get("multiline"):
        control = f'<textarea name="{name}" rows="3"{placeholder}>{html.escape(initial or "")}</textarea>'
    elif kind == "plain_text_input":
        control = f'<input type="text" name="{name}" value="{_attr(initial or "")}"{placeholder}>'
    elif kind == "number_input":
        step = "any" if element.get("is_decimal_allowed") else "1"
        bounds = "".join(f' {k}="{_attr(str(element[s]))}"' for k, s in (("min", "min_value"), ("max", "max_value"))
                         if element.get(s) is not None)
        control = f'<input type="number" name="{name}" step="{step}"{bounds} value="{_attr(initial or "")}">'
    elif kind in ("radio_buttons", "static_select"):
        chosen = value if value is not None else (element.get("initial_option") or {}).get("value")
        options = element.get("options") or []
        if kind == "radio_buttons":
            control = "".join(
                f'<label class="radio"><input type="radio" name="{name}" value="{_attr(o.get("value", ""))}"'
                f'{" checked" if o.get("value") == chosen else ""}> {html.escape(_plain(o.get("text")))}'
                + (f' <span class="muted">{html.escape(_plain(o.get("description")))}</span>' if o.get("description") else "")
                + "</label>" for o in options)
        else:
            control = f'<select name="{name}">' + "".join(
                f'<option value="{_attr(o.get("value", ""))}"{" selected" if o.get("value") == chosen else ""}>'
                f'{html.escape(_plain(o.get("text")))}</option>' for o in options) + "</select>"
    else:
        control = f'<span class="muted">[{html.escape(str(kind))} input not supported here]</span>'
    hint = f'<div class="muted">{html.escape(_plain(item.get("hint")))}</div>' if item.get("hint") else ""
    problem = f'<div class="error" data-error-for="{name}">{html.escape(error)}</div>' if error else ""
    return f'<div class="field"><label class="label">{label}</label>{control}{hint}{problem}</div>'


def modal(view: Mapping[str, Any], *, depth: int, values: Mapping[str, str | None],
          errors: Mapping[str, str]) -> str:
    """Render the top modal as a form: inputs from its input blocks, each with its error."""
    view_id = str(view.get("id", ""))
    ref = {"surface": "modal", "view_id": view_id}
    parts = []
    for item in view.get("blocks") or []:
        if item.get("type") == "input":
            block_id = str(item.get("block_id", ""))
            parts.append(_field(item, values.get(block_id), errors.get(block_id)))
        else:
            parts.append(block(item, ref))
    stacked = f' <span class="muted">({depth} modals open, top shown)</span>' if depth > 1 else ""
    submit = _plain(view.get("submit"))
    close = _plain(view.get("close")) or "Close"
    return (f'<form class="modal" data-view="{_attr(view_id)}"><h3>{html.escape(_plain(view.get("title")))}{stacked}</h3>'
            + "".join(parts) + '<div class="actions">'
            + (f'<button type="submit" class="btn primary">{html.escape(submit)}</button>' if submit else "")
            + f'<button type="button" class="btn" data-close="{_attr(view_id)}">{html.escape(close)}</button>'
            + "</div></form>")
