"""Slash command text parsed into typed commands, before anything is asked of the workflows.

    /gpu-namespace [list | status NS | extend NS 3d | release NS | help]
    /gpu-admin capacity | leases | revoke NS [reason] | reclaim NS at TIME | drain NODE

Pure functions: a wrong command becomes `Help(problem=...)`, shown with the usage. Durations
typed in Slack need a unit (`typed_duration`). Imported by the command listeners, bot.forms
and their tests.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from config.durations import parse_duration

NO_UNIT = "write a unit, e.g. 8h or 3d"
# A time from now written without `+` or `in`: digits and units only (`6h`, `1d12h`). An ISO
# time such as 2026-03-05T18:00Z has other characters, and is read as one.
_BARE_DURATION = re.compile(r"(?:\d+\s*[smhdw]\s*)+", re.IGNORECASE)
# A node's name is a DNS subdomain (what the API server accepts for one).
_NODE_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


@dataclass(frozen=True)
class OpenForm:
    """No arguments: open the request modal."""


@dataclass(frozen=True)
class ListLeases:
    """The user's live leases."""


@dataclass(frozen=True)
class Status:
    namespace: str


@dataclass(frozen=True)
class Extend:
    namespace: str
    by: timedelta


@dataclass(frozen=True)
class Release:
    namespace: str


@dataclass(frozen=True)
class Help:
    problem: str | None = None


@dataclass(frozen=True)
class Capacity:
    """Pools: capacity, reserved and free units."""


@dataclass(frozen=True)
class AllLeases:
    """Every live lease."""


@dataclass(frozen=True)
class Revoke:
    namespace: str
    reason: str = ""


@dataclass(frozen=True)
class Reclaim:
    namespace: str
    at: datetime


@dataclass(frozen=True)
class Drain:
    node: str


NamespaceCommand = OpenForm | ListLeases | Status | Extend | Release | Help
AdminCommand = Capacity | AllLeases | Revoke | Reclaim | Drain | Help


def typed_duration(text: str) -> timedelta:
    """Parse a duration a person typed, such as `3d`, `12h` or `1d12h`; refuse a bare number,
    which config.durations reads as seconds where people mean hours or days."""
    value = text.strip()
    if value.isdigit():
        raise ValueError(f"'{value}' has no unit: {NO_UNIT}")
    return parse_duration(value)


def _words(text: str) -> list[str]:
    return text.strip().split()


def namespace_command(text: str) -> NamespaceCommand:
    """Parse the text after /gpu-namespace."""
    words = _words(text)
    if not words:
        return OpenForm()
    verb, args = words[0].lower(), words[1:]
    if verb in ("help", "-h", "--help", "?"):
        return Help()
    if verb == "list" and not args:
        return ListLeases()
    if verb in ("status", "release") and len(args) == 1:
        return Status(args[0]) if verb == "status" else Release(args[0])
    if verb == "extend" and len(args) == 2:
        try:
            return Extend(args[0], typed_duration(args[1]))
        except ValueError as exc:
            return Help(str(exc))
    if verb in ("list", "status", "release", "extend"):
        return Help(f"`{verb}` takes {_ARGS[verb]}")
    return Help(f"unknown command `{verb}`")


_ARGS = {
    "list": "no arguments",
    "status": "a namespace: `status NS`",
    "release": "a namespace: `release NS`",
    "extend": "a namespace and a duration: `extend NS 3d`",
    "revoke": "a namespace and optionally a reason: `revoke NS [reason]`",
    "reclaim": "a namespace and a time: `reclaim NS at 2026-03-05T18:00` or `reclaim NS at +6h`",
    "drain": "a node name: `drain NODE`",
}


def admin_command(text: str, *, now: datetime) -> AdminCommand:
    """Parse the text after /gpu-admin (relative times count from `now`)."""
    words = _words(text)
    if not words or words[0].lower() in ("help", "-h", "--help", "?"):
        return Help()
    verb, args = words[0].lower(), words[1:]
    if verb == "capacity" and not args:
        return Capacity()
    if verb == "leases" and not args:
        return AllLeases()
    if verb == "revoke" and args:
        return Revoke(args[0], " ".join(args[1:]))
    if verb == "drain" and len(args) == 1:
        if len(args[0]) > 253 or not _NODE_NAME.fullmatch(args[0]):
            return Help(f"{args[0]!r} is not a node name: node names are lower-case letters, digits, "
                        "'-' and '.' (`kubectl get nodes` lists them)")
        return Drain(args[0])
    if verb == "reclaim" and len(args) >= 3 and args[1].lower() == "at":
        try:
            return Reclaim(args[0], parse_time(" ".join(args[2:]), now=now))
        except ValueError as exc:
            return Help(str(exc))
    if verb in _ARGS:
        return Help(f"`{verb}` takes {_ARGS[verb]}")
    return Help(f"unknown command `{verb}`")


def parse_time(text: str, *, now: datetime) -> datetime:
    """Parse `2026-03-05T18:00` (UTC unless an offset is given), or `+6h` / `in 6h` / `6h` from
    `now`; a time from now that is not a duration says what is wrong with the duration."""
    value = text.strip()
    relative = value.removeprefix("+").removeprefix("in ").strip()
    if relative != value or _BARE_DURATION.fullmatch(relative):
        return now + typed_duration(relative)  # its errors name the problem: no unit, too long
    try:
        parsed = datetime.fromisoformat(value.replace(" ", "T", 1) if "T" not in value else value)
    except ValueError:
        raise ValueError(
            f"not a time: {text!r} (write 2026-03-05T18:00 in UTC, an ISO time with an offset, or +6h)"
        ) from None
    try:
        return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)
    except OverflowError:  # past the first or the last time Python can hold in UTC
        if parsed.year <= 1:
            raise ValueError(f"{text!r} is in the past: give a time to come, or use `revoke` to reclaim now") from None
        raise ValueError(f"{text!r} is too far in the future: give a time within the next few years") from None
