"""Faults the sandbox injects: rate limits, server errors, refusals and delays.

A fault matches calls of one method ("*" for any, "response_url" for webhook posts),
counted from the moment it was added: `nth` is the first call it hits (1 = the next call)
and `times` how many calls in a row. It answers with:
- status 429: a `Retry-After: retry_after` header and `{"ok": false, "error": "ratelimited"}`,
  as Slack rate-limits;
- status 500/503 (any 5xx): `{"ok": false, "error": "internal_error"/"service_unavailable"}`;
- status 200 with `error`: `{"ok": false, "error": error}` (e.g. "channel_not_found");
and may first hold the response `delay` seconds (a slow Slack). A faulted call does not
reach the method, so nothing is posted. As JSON (POST /_sandbox/faults):
`{"method": "chat.postMessage", "status": 429, "retry_after": 1, "nth": 1, "times": 1}`.
Part of sandbox.slack.
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import asdict, dataclass, field
from typing import Any

_DEFAULT_ERRORS = {429: "ratelimited", 500: "internal_error", 503: "service_unavailable"}


@dataclass
class Fault:
    """One injected fault and how many matching calls it has seen."""

    method: str
    status: int = 429
    error: str | None = None
    nth: int = 1
    times: int = 1
    retry_after: int = 1
    delay: float = 0.0
    id: int = 0
    seen: int = field(default=0)
    hits: int = field(default=0)

    def __post_init__(self) -> None:
        if self.status == 200 and not self.error:
            raise ValueError("a fault with status 200 needs an error name")
        if self.nth < 1 or self.times < 1:
            raise ValueError("nth and times count from 1")
        self.error = self.error or _DEFAULT_ERRORS.get(self.status, "fatal_error")

    @property
    def spent(self) -> bool:
        """Say whether the fault has hit every call it was meant to."""
        return self.hits >= self.times

    def body(self) -> dict[str, Any]:
        """Return the JSON body of the faulted response."""
        return {"ok": False, "error": self.error}

    def headers(self) -> dict[str, str]:
        """Return extra response headers (Retry-After on 429)."""
        return {"Retry-After": str(self.retry_after)} if self.status == 429 else {}

    def to_dict(self) -> dict[str, Any]:
        """Return the fault as JSON-ready data, with its progress."""
        return {**asdict(self), "spent": self.spent}


class FaultPlan:
    """The faults waiting for calls; the first one a call falls into answers it."""

    def __init__(self) -> None:
        self._faults: list[Fault] = []
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def add(self, method: str, **options: Any) -> Fault:
        """Add a fault (see the module docstring for the options) and return it."""
        fault = Fault(method, **options)
        with self._lock:
            fault.id = next(self._ids)
            self._faults.append(fault)
        return fault

    def take(self, method: str) -> Fault | None:
        """Count a call of `method` and return the fault that answers it, if any."""
        with self._lock:
            chosen = None
            for fault in self._faults:
                if fault.method not in ("*", method) or fault.spent:
                    continue
                fault.seen += 1
                if chosen is None and fault.seen >= fault.nth:
                    fault.hits += 1
                    chosen = fault
            return chosen

    def list(self) -> list[Fault]:
        """Return every fault added since the last clear, spent ones included."""
        with self._lock:
            return list(self._faults)

    def clear(self) -> None:
        """Remove every fault."""
        with self._lock:
            self._faults.clear()
