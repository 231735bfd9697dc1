"""Small Block Kit primitives and the formatting of times people read.

Slack limits enforced here so a long namespace or reason never makes a call fail: section
text 3,000 characters, plain_text option text 75, header 150; 50 blocks in a message.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

Block = dict[str, Any]

SECTION_MAX = 3000
MESSAGE_BLOCKS_MAX = 50  # blocks in one message


def clip(text: str, limit: int) -> str:
    """Shorten text to Slack's limit, marking the cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def plain(text: str, limit: int = 2000) -> dict[str, Any]:
    return {"type": "plain_text", "text": clip(text, limit), "emoji": True}


def mrkdwn(text: str) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": clip(text, SECTION_MAX)}


def header(text: str) -> Block:
    return {"type": "header", "text": plain(text, 150)}


def section(text: str, *, block_id: str | None = None, fields: list[str] | None = None) -> Block:
    block: Block = {"type": "section", "text": mrkdwn(text)}
    if fields:
        block["fields"] = [mrkdwn(clip(f, 2000)) for f in fields[:10]]
    if block_id:
        block["block_id"] = block_id
    return block


def _chunks(lines: list[str], room: int) -> list[list[str]]:
    """Split lines into runs that fit in `room` characters joined by newlines, none cut
    mid-line (a line longer than `room` alone is clipped)."""
    chunks: list[list[str]] = []
    chunk: list[str] = []
    size = 0
    for line in (clip(line, room) for line in lines):
        if chunk and size + 1 + len(line) > room:
            chunks.append(chunk)
            chunk, size = [], 0
        size += len(line) + (1 if chunk else 0)
        chunk.append(line)
    if chunk:
        chunks.append(chunk)
    return chunks


def line_sections(lines: list[str]) -> list[Block]:
    """Return the lines as few sections as Slack's text limit allows, none cut mid-line (a
    line longer than the limit alone is clipped)."""
    return [section("\n".join(chunk)) for chunk in _chunks(lines, SECTION_MAX)]


def code_sections(lines: list[str], *, head: str, max_blocks: int) -> tuple[list[Block], int]:
    """Return the lines as code blocks, each in a section of its own within Slack's text limit
    with `head` (column titles) on top, at most `max_blocks` of them; and how many lines they
    hold (the caller counts the rest)."""
    fence = "```"
    room = SECTION_MAX - 2 * len(fence) - len(head) - 1
    chunks = _chunks(lines, room)[:max_blocks]
    blocks = [section(fence + "\n".join([head, *chunk]) + fence) for chunk in chunks]
    return blocks, sum(len(chunk) for chunk in chunks)


def context(*texts: str) -> Block:
    return {"type": "context", "elements": [mrkdwn(t) for t in texts[:10] if t]}


def divider() -> Block:
    return {"type": "divider"}


def button(text: str, action_id: str, value: str, *, style: str | None = None,
           confirm: tuple[str, str, str] | None = None) -> dict[str, Any]:
    """Return a button; confirm = (title, text, confirm label) asks before acting."""
    element: dict[str, Any] = {"type": "button", "text": plain(text, 75), "action_id": action_id, "value": value}
    if style:
        element["style"] = style
    if confirm:
        title, body, yes = confirm
        element["confirm"] = {"title": plain(title, 100), "text": plain(body, 300),
                              "confirm": plain(yes, 30), "deny": plain("Back", 30)}
        if style == "danger":
            element["confirm"]["style"] = "danger"
    return element


def actions(block_id: str, elements: list[dict[str, Any]]) -> Block:
    return {"type": "actions", "block_id": block_id, "elements": elements[:25]}


def time_left(left: timedelta | None) -> str:
    """Return a rough duration people read: `2d 4h`, `3h 20m`, `12m`, `expired`."""
    if left is None:
        return "–"
    minutes = int(left.total_seconds() // 60)
    if minutes <= 0:
        return "expired"
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h" if hours else f"{days}d"
    if hours:
        return f"{hours}h {mins}m" if mins else f"{hours}h"
    return f"{mins}m"


def when(value: datetime | str | None) -> str:
    """Return a time Slack shows in the reader's own time zone (ISO text as the fallback)."""
    if value is None:
        return "–"
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    fallback = moment.strftime("%Y-%m-%d %H:%M UTC")
    return f"<!date^{int(moment.timestamp())}^{{date_short_pretty}} {{time}}|{fallback}>"
