"""Slash command text becomes typed commands; mistakes become Help with the problem."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot import parsing

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize(("text", "expected"), [
    ("", parsing.OpenForm()),
    ("  ", parsing.OpenForm()),
    ("list", parsing.ListLeases()),
    ("LIST", parsing.ListLeases()),
    ("status alice-nb", parsing.Status("alice-nb")),
    ("extend alice-nb 3d", parsing.Extend("alice-nb", timedelta(days=3))),
    ("extend alice-nb 1d12h", parsing.Extend("alice-nb", timedelta(days=1, hours=12))),
    ("release alice-nb", parsing.Release("alice-nb")),
    ("help", parsing.Help()),
])
def test_namespace_commands(text, expected):
    assert parsing.namespace_command(text) == expected


@pytest.mark.parametrize(("text", "problem"), [
    ("extend alice-nb soon", "not a duration"),
    ("extend alice-nb 3", "'3' has no unit: write a unit, e.g. 8h or 3d"),  # not 3 seconds
    ("extend alice-nb", "`extend` takes a namespace and a duration"),
    ("status", "`status` takes a namespace"),
    ("list everything", "`list` takes no arguments"),
    ("frobnicate", "unknown command `frobnicate`"),
])
def test_namespace_mistakes_say_what_is_wrong(text, problem):
    result = parsing.namespace_command(text)
    assert isinstance(result, parsing.Help) and problem in (result.problem or "")


@pytest.mark.parametrize(("text", "expected"), [
    ("capacity", parsing.Capacity()),
    ("leases", parsing.AllLeases()),
    ("revoke alice-nb", parsing.Revoke("alice-nb", "")),
    ("revoke alice-nb over budget", parsing.Revoke("alice-nb", "over budget")),
    ("drain gpu-h100-1g-0", parsing.Drain("gpu-h100-1g-0")),
    ("reclaim alice-nb at 2026-03-05T18:00", parsing.Reclaim("alice-nb", datetime(2026, 3, 5, 18, 0, tzinfo=UTC))),
    ("reclaim alice-nb at 2026-03-05 18:00", parsing.Reclaim("alice-nb", datetime(2026, 3, 5, 18, 0, tzinfo=UTC))),
    ("reclaim alice-nb at +6h", parsing.Reclaim("alice-nb", NOW + timedelta(hours=6))),
    ("reclaim alice-nb at in 2d", parsing.Reclaim("alice-nb", NOW + timedelta(days=2))),
    ("reclaim alice-nb at 1d12h", parsing.Reclaim("alice-nb", NOW + timedelta(days=1, hours=12))),
    ("reclaim alice-nb at 2026-03-05T18:00Z", parsing.Reclaim("alice-nb", datetime(2026, 3, 5, 18, 0, tzinfo=UTC))),
    ("", parsing.Help()),
])
def test_admin_commands(text, expected):
    assert parsing.admin_command(text, now=NOW) == expected


def test_times_with_an_offset_keep_it():
    at = parsing.parse_time("2026-03-05T18:00+02:00", now=NOW)
    assert at == datetime(2026, 3, 5, 16, 0, tzinfo=UTC)


@pytest.mark.parametrize(("text", "problem"), [
    ("reclaim alice-nb at someday", "not a time"),
    ("reclaim alice-nb at +6", "'6' has no unit: write a unit, e.g. 8h or 3d"),  # not in 6 seconds
    ("reclaim alice-nb at in 6", "'6' has no unit"),
    ("reclaim alice-nb at 6", "or +6h"),
    ("reclaim alice-nb at in soon", "not a duration: 'soon'"),
    # The duration's own reason, not "not a time".
    ("reclaim alice-nb at +99999d", "too long: at most 3650d"),
    ("reclaim alice-nb at 99999d", "too long: at most 3650d"),
    ("reclaim alice-nb at 9999-12-31T23:30-05:00", "too far in the future"),
    # Before the first time Python can hold in UTC: in the past, not "too far in the future".
    ("reclaim alice-nb at 0001-01-01T00:00+05:00", "is in the past"),
    ("reclaim alice-nb 2026-03-05", "`reclaim` takes a namespace and a time"),
    ("drain", "`drain` takes a node name"),
    ("drain <!channel>", "is not a node name"),
    ("drain GPU-Node-0", "is not a node name"),
    ("shutdown", "unknown command"),
])
def test_admin_mistakes_say_what_is_wrong(text, problem):
    result = parsing.admin_command(text, now=NOW)
    assert isinstance(result, parsing.Help) and problem in (result.problem or "")
