"""Durations as people write them: `90m`, `12h`, `3d`, `1w`, `1d12h`.

Used by the policy file schema and by every user-facing parser (CLI, Slack).
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PART = re.compile(r"(\d+)\s*([smhdw])")
_WHOLE = re.compile(r"^\s*(?:\d+\s*[smhdw]\s*)+$")
_HINT = "(write a number and a unit, e.g. 90m, 12h, 3d, 1w or 1d12h)"
# The longest duration anything accepts: longer is a typo, and would overflow timedelta.
MAX_DURATION = timedelta(days=3650)


def parse_duration(text: str | int | float | timedelta) -> timedelta:
    """Parse a duration such as `3d`, `12h`, `1d12h` or a number of seconds, up to MAX_DURATION."""
    if isinstance(text, timedelta):
        return text
    if isinstance(text, bool):
        raise ValueError(f"not a duration: {text!r}")
    if isinstance(text, int | float):
        if not math.isfinite(text):
            raise ValueError(f"not a duration: {text!r} {_HINT}")
        if text < 0:
            raise ValueError(f"duration must not be negative: {text!r}")
        return _capped(text, text)
    value = str(text).strip().lower()
    if value.isdigit():
        return _capped(int(value), text)
    if not _WHOLE.match(value):
        raise ValueError(f"not a duration: {text!r} {_HINT}")
    return _capped(sum(int(n) * _UNITS[u] for n, u in _PART.findall(value)), text)


def _capped(seconds: int | float, text: object) -> timedelta:
    # Checked before building the timedelta: a huge count of days would overflow it, and no
    # lease, timeout or warning is meant to last for centuries anyway.
    if seconds > MAX_DURATION.total_seconds():
        raise ValueError(
            f"duration {text!r} is too long: at most {MAX_DURATION.days}d (10 years); write a shorter "
            "one, e.g. 90m, 12h, 3d, 1w or 1d12h"
        )
    return timedelta(seconds=seconds)


def format_duration(delta: timedelta) -> str:
    """Format a duration compactly, largest units first: `3d`, `1d12h`, `45m`, `0s`, to the
    nearest second (a span between two clock readings is 8h, not 7h59m59s, when it is 0.4 s short)."""
    seconds = round(delta.total_seconds())
    sign = "-" if seconds < 0 else ""
    seconds = abs(seconds)
    parts = []
    for unit in ("w", "d", "h", "m", "s"):
        size = _UNITS[unit]
        if seconds >= size:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return sign + ("".join(parts) or "0s")


def format_moment(moment: datetime | float) -> str:
    """Format a moment (an aware datetime, or POSIX seconds) as messages show it: UTC, to the
    minute, e.g. "2026-12-02 17:05 UTC"."""
    if not isinstance(moment, datetime):
        moment = datetime.fromtimestamp(moment, UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
