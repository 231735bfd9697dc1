"""The record of every Web API call and response_url post the sandbox received.

Tests and other processes read it to assert what the bot did; `wait_for` blocks on a
condition variable until enough calls arrived or the bound passed, so nobody sleeps a fixed
time. Part of sandbox.slack.
"""

from __future__ import annotations

import copy
import threading
import time
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Call:
    """One request: method (or "response_url"), arguments as parsed, and the answer given."""

    seq: int
    method: str
    args: dict[str, Any]
    token: str | None
    at: float
    status: int
    response: dict[str, Any]
    fault: bool = False

    @property
    def ok(self) -> bool:
        """Say whether the call succeeded (HTTP 200 and ok: true)."""
        return self.status == 200 and bool(self.response.get("ok"))

    def to_dict(self) -> dict[str, Any]:
        """Return the call as JSON-ready data (the token shortened, as logs should)."""
        data = asdict(self)
        data["token"] = self.token[:9] + "..." if self.token else None
        data["ok"] = self.ok
        return data


class CallLog:
    """Calls in arrival order, with a bounded wait for the nth call of a method."""

    def __init__(self) -> None:
        self._calls: list[Call] = []
        self._changed = threading.Condition()

    def record(self, *, method: str, args: dict[str, Any], token: str | None, at: float, status: int,
               response: dict[str, Any], fault: bool = False) -> Call:
        """Append a call and wake everyone waiting for calls."""
        with self._changed:
            call = Call(len(self._calls) + 1, method, copy.deepcopy(args), token, at, status,
                        copy.deepcopy(response), fault)
            self._calls.append(call)
            self._changed.notify_all()
            return call

    def calls(self, method: str | None = None) -> list[Call]:
        """Return the calls of one method (all calls when None), oldest first."""
        with self._changed:
            return [c for c in self._calls if method is None or c.method == method]

    def poke(self) -> None:
        """Wake waiters after a change that is not a call (a seeded message)."""
        with self._changed:
            self._changed.notify_all()

    def clear(self) -> None:
        """Forget every call."""
        with self._changed:
            self._calls.clear()
            self._changed.notify_all()

    def wait_for(self, method: str | None, n: int = 1, timeout: float = 5.0, *, ok_only: bool = False) -> list[Call]:
        """Return the first n calls of a method once they arrived; raise TimeoutError after timeout s."""
        deadline = time.monotonic() + timeout

        def matching() -> list[Call]:
            return [c for c in self._calls
                    if (method is None or c.method == method) and (c.ok or not ok_only)]

        with self._changed:
            while len(found := matching()) < n:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    seen = [c.method for c in self._calls]
                    raise TimeoutError(
                        f"waited {timeout}s for {n} {method or 'any'} call(s), got {len(found)}; "
                        f"calls so far: {seen}"
                    )
                self._changed.wait(remaining)
            return found[:n]

    def wait_until(self, predicate: Any, timeout: float, describe: str) -> None:
        """Block until predicate() holds, re-checking after each call; raise TimeoutError after timeout s."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not predicate():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"waited {timeout}s for {describe}")
                self._changed.wait(remaining)
