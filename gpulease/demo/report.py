"""The demo's HTML report: the timeline, the Slack messages as users saw them, and capacity
per tier over time. One self-contained file (inline CSS and SVG), no scripts."""

from __future__ import annotations

import html
import re
from datetime import datetime
from pathlib import Path

from gpulease.demo.scenario import NAMES, Story
from gpulease.redact import hide_password
from sandbox.slack import dm_channel_id

_MENTION = re.compile(r"<@(U[0-9A-Z]+)>")
CSS = """
body{font:15px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:1100px;color:#1d1c1d;padding:0 1rem}
h1{margin-bottom:.2rem} h2{margin-top:2.2rem;border-bottom:1px solid #ddd;padding-bottom:.3rem}
.ok{color:#007a5a} .fail{color:#c01343;font-weight:600}
table{border-collapse:collapse;width:100%} td,th{padding:.3rem .6rem;border-bottom:1px solid #eee;text-align:left}
.step td{background:#f4f4f5;font-weight:600}
.channel{border:1px solid #ddd;border-radius:8px;margin:1rem 0;padding:.6rem 1rem}
.msg{margin:.5rem 0;padding:.4rem .6rem;border-left:3px solid #1264a3;background:#fafafa}
.reply{margin-left:2rem;border-left-color:#aaa}
.btn{display:inline-block;border:1px solid #bbb;border-radius:4px;padding:0 .5rem;margin:.2rem .3rem 0 0;font-size:13px}
.who{font-weight:600} .ts{color:#777;font-size:12px}
.charts{display:flex;flex-wrap:wrap;gap:1rem} .chart{border:1px solid #eee;border-radius:6px;padding:.4rem}
"""


def _mentions(text: str) -> str:
    return _MENTION.sub(lambda m: "@" + NAMES.get(m.group(1), m.group(1)), text)


def mrkdwn(text: str) -> str:
    """Render Slack mrkdwn (mentions, *bold*, `code`) as HTML."""
    escaped = html.escape(_mentions(text))
    escaped = re.sub(r"\*([^*\n]+)\*", r"<b>\1</b>", escaped)
    escaped = re.sub(r"`([^`\n]+)`", r"<code>\1</code>", escaped)
    return escaped.replace("\n", "<br>")


def block_text(block: dict) -> list[str]:
    """Return the texts a Block Kit block shows (section text and fields, context elements)."""
    out = []
    if isinstance(block.get("text"), dict):
        out.append(block["text"].get("text", ""))
    for item in block.get("fields") or []:
        out.append(item.get("text", ""))
    for element in block.get("elements") or []:
        if element.get("type") in ("mrkdwn", "plain_text"):
            out.append(element.get("text", ""))
    return out


def _message(message: dict, *, reply: bool = False) -> str:
    blocks = message.get("blocks") or []
    texts = [t for b in blocks for t in block_text(b)] or [message.get("text", "")]
    buttons = [
        e.get("text", {}).get("text", "") for b in blocks if b.get("type") == "actions"
        for e in b.get("elements") or [] if e.get("type") == "button"
    ]
    body = "<br>".join(mrkdwn(t) for t in texts if t)
    if buttons:
        body += "<div>" + "".join(f'<span class="btn">{html.escape(b)}</span>' for b in buttons) + "</div>"
    edited = " (edited)" if message.get("edited") else ""
    return f'<div class="msg{" reply" if reply else ""}"><span class="ts">{message["ts"]}{edited}</span><br>{body}</div>'


def _channel(story: Story, title: str, channel: str) -> str:
    slack = story.env.slack
    parts = []
    for parent in slack.messages(channel):
        parts.append(_message(parent))
        parts.extend(_message(r, reply=True) for r in slack.messages(channel, parent["ts"]))
    if not parts:
        return ""
    return f'<div class="channel"><h3>{html.escape(title)}</h3>{"".join(parts)}</div>'


def _chart(story: Story, tier: str) -> str:
    points = [(s.label, *s.pools.get(tier, (0, 0))) for s in story.snapshots]
    if not points:
        return ""
    top = max(1, *(max(c, r) for _, c, r in points))
    w, h, pad = 300, 140, 24
    step = (w - 2 * pad) / max(1, len(points) - 1)

    def line(values: list[int], colour: str) -> str:
        coords = " ".join(f"{pad + i * step:.1f},{h - pad - v / top * (h - 2 * pad):.1f}" for i, v in enumerate(values))
        return f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{coords}"/>'

    caps = [c for _, c, _ in points]
    held = [r for _, _, r in points]
    labels = "".join(
        f'<text x="{pad + i * step:.1f}" y="{h - 6}" font-size="8" text-anchor="middle">{i + 1}</text>'
        for i in range(len(points))
    )
    return (
        f'<div class="chart"><b>{html.escape(tier)}</b> <span class="ts">capacity (blue) / reserved (orange), '
        f'max {top}</span><br><svg width="{w}" height="{h}" role="img" aria-label="{html.escape(tier)}">'
        f'{line(caps, "#1264a3")}{line(held, "#e8912d")}{labels}</svg></div>'
    )


def write(story: Story, path: Path, *, failure: str | None, capacity: list[dict]) -> Path:
    """Write the report and return its path."""
    env = story.env
    rows = []
    current = None
    for event in story.events:
        if event.step != current:
            current = event.step
            rows.append(f'<tr class="step"><td colspan="2">{html.escape(event.step)}</td></tr>')
        rows.append(f"<tr><td class=ts>{event.at:%H:%M:%S}</td><td>{mrkdwn(event.text)}</td></tr>")
    outcome = (f'<p class="fail">FAILED — {html.escape(failure)}</p>' if failure
               else '<p class="ok">Every step happened as expected.</p>')
    tiers = sorted({t for s in story.snapshots for t in s.pools})
    snapshots = "".join(f"<li>{html.escape(s.label)} ({s.at:%H:%M})</li>" for s in story.snapshots)
    cap_rows = "".join(
        f"<tr><td>{html.escape(c['tier'])}</td><td>{c['capacity']}</td><td>{c['reserved']}</td><td>{c['free']}</td>"
        f"<td>{html.escape(', '.join(c['nodes']))}</td></tr>" for c in capacity
    )
    channels = [_channel(story, "#gpu-approvals", "C0APPROVALS")]
    channels += [_channel(story, f"DM: gpulease → {NAMES[u]}", dm_channel_id(u)) for u in ("U0ALICE", "U0BOB", "U0CAROL")]
    document = f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>gpulease demo</title>
<style>{CSS}</style></head><body>
<h1>gpulease demo</h1><p class="ts">run at {datetime.now():%Y-%m-%d %H:%M} · store {html.escape(hide_password(env.settings.database_url))}</p>
{outcome}
<h2 id="timeline">Timeline</h2><table>{"".join(rows)}</table>
<h2 id="capacity">Capacity per tier over time</h2><ol class="ts">{snapshots}</ol>
<div class="charts">{"".join(_chart(story, t) for t in tiers)}</div>
<h2>Final capacity</h2><table><tr><th>tier</th><th>capacity</th><th>reserved</th><th>free</th><th>nodes</th></tr>{cap_rows}</table>
<h2 id="slack">Slack, as users saw it</h2>{"".join(channels)}
</body></html>"""
    path.write_text(document, encoding="utf-8")
    return path
