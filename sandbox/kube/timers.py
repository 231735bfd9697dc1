"""One background thread that runs delayed callbacks (namespace finalisation, GPU Operator
reconfiguration), so simulated controllers act asynchronously like real ones, and stop
together with the server.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)


class TimerQueue:
    """Run callbacks after a delay on a single daemon thread."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Callable[..., Any], tuple[Any, ...]]] = []
        self._counter = itertools.count()
        self._cond = threading.Condition()
        self._stopped = False
        self._busy = 0
        self._thread = threading.Thread(target=self._run, name="kube-sandbox-timers", daemon=True)
        self._thread.start()

    def call_later(self, delay: float, fn: Callable[..., Any], *args: Any) -> None:
        """Schedule fn(*args) to run `delay` seconds from now (0 = as soon as possible)."""
        with self._cond:
            heapq.heappush(self._heap, (time.monotonic() + max(delay, 0.0), next(self._counter), fn, args))
            self._cond.notify()

    def idle(self) -> bool:
        """True when nothing is due or running (tests use it to settle)."""
        with self._cond:
            return not self._heap and not self._busy

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopped and (not self._heap or self._heap[0][0] > time.monotonic()):
                    timeout = self._heap[0][0] - time.monotonic() if self._heap else None
                    self._cond.wait(timeout)
                if self._stopped:
                    return
                _, _, fn, args = heapq.heappop(self._heap)
                self._busy += 1
            try:
                fn(*args)
            except Exception:  # one failed callback must not stop the simulated controllers
                log.exception("kube.sandbox.timer.failed")
            finally:
                with self._cond:
                    self._busy -= 1

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._heap.clear()
            self._cond.notify_all()
        self._thread.join(timeout=5)
