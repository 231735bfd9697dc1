"""Button values: compact, round-trip, and forged ones refused as out of date."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bot.buttons import LeaseButton, decode
from leases.errors import DomainError


def test_values_round_trip_and_stay_small():
    button = LeaseButton("f" * 32, extensions=2, by_seconds=86400, tier="h100-shared", request=123456789)
    assert decode(button.encode()) == button and len(button.encode()) < 120
    assert decode(LeaseButton("L1").encode()) == LeaseButton("L1")
    assert button.by == timedelta(days=1)


@pytest.mark.parametrize("value", [None, "", "not-json", "{}", '{"x": 1}', '{"l": "L1", "x": "many"}', "[1]"])
def test_values_that_are_not_ours_are_refused(value):
    with pytest.raises(DomainError, match="out of date"):
        decode(value)
