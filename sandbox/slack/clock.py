"""Clocks for the sandbox: the wall clock, or a manual one that tests move by hand.

Trigger ids expire 3 s after they are issued and response URLs after 30 min; tests prove
that by advancing a ManualClock instead of sleeping. Part of sandbox.slack.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

Clock = Callable[[], float]
"""Seconds since the epoch, like time.time."""

wall_clock: Clock = time.time


class ManualClock:
    """A clock that only moves when told to; call it to read the time."""

    def __init__(self, start: float = 1_772_443_800.0) -> None:
        # The default start is 2026-03-02 09:30 UTC, the fixed 'now' of tests/conftest.py.
        self._now = start
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> float:
        """Move the clock forward and return the new time."""
        with self._lock:
            self._now += seconds
            return self._now
