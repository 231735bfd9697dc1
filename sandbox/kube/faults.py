"""Fault injection: rules that make matching requests fail the way real API servers and
the load balancers in front of them do.

A rule matches by method ("*" for any) and path (prefix, or a regular expression), then
fires on the nth matching request, on every k-th, with a probability (seeded), or on each
match; `times` caps how often it fires. Kinds:

- "status": answer `status` (429, 500, 502, 503, 504, ...) with a `kind: Status` body and,
  when `retry_after` is set, a Retry-After header;
- "delay": wait `seconds`, then handle the request normally (for client timeouts);
- "drop": close the connection without any response;
- "conflict": answer 409 Conflict with the optimistic-concurrency wording (PUT/PATCH only).
"""

from __future__ import annotations

import itertools
import random
import re
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import REASONS, ApiError, conflict, status_body
from .transport import DropConnection, Request, Response, Result

if TYPE_CHECKING:
    from .incoming import Target
    from .requestlog import RecordedRequest

KINDS = ("status", "delay", "drop", "conflict")
_ids = itertools.count(1)

MESSAGES = {
    429: "Too many requests, please try again later.",
    500: "Internal error occurred: injected fault",
    502: "the server responded with the status code 502 but did not return more information",
    503: "the server is currently unable to handle the request",
    504: "Timeout: request did not complete within requested timeout - context deadline exceeded",
}


@dataclass
class FaultRule:
    """One injected fault; see the module docstring for the fields' meaning."""

    kind: str
    method: str = "*"
    path: str = ""
    path_regex: str | None = None
    nth: int | None = None
    every: int | None = None
    probability: float | None = None
    seed: int | None = None
    times: int | None = None
    status: int = 503
    retry_after: float | None = None
    seconds: float = 0.0
    message: str = ""
    id: str = field(default_factory=lambda: f"fault-{next(_ids)}")
    matched: int = 0
    fired: int = 0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; expected one of {KINDS}")
        self.method = self.method.upper()
        self._pattern = re.compile(self.path_regex) if self.path_regex else None
        self._rng = random.Random(self.seed)
        if self.nth is not None and self.times is None:
            self.times = 1

    def _matches(self, req: Request) -> bool:
        if self.method not in ("*", req.method):
            return False
        if self.kind == "conflict" and req.method not in ("PUT", "PATCH"):
            return False
        if self._pattern is not None:
            return bool(self._pattern.search(req.path))
        return req.path.startswith(self.path)

    def _fires(self) -> bool:
        if self.times is not None and self.fired >= self.times:
            return False
        if self.nth is not None:
            return self.matched == self.nth
        if self.every is not None:
            return self.matched % self.every == 0
        if self.probability is not None:
            return self._rng.random() < self.probability
        return True

    def apply(self, req: Request, target: Target | None) -> Result | None:
        """Return the faulty result, or None to continue normally (after a delay)."""
        if self.kind == "delay":
            time.sleep(self.seconds)
            return None
        if self.kind == "drop":
            return DropConnection()
        if self.kind == "conflict":
            name = target.name if target else ""
            err = (
                conflict(target.rt.plural, name, target.rt.group)
                if target
                else ApiError(409, "Operation cannot be fulfilled: the object has been modified")
            )
            return Response(409, err.status())
        headers = {}
        details: dict[str, Any] | None = None
        if self.retry_after is not None:
            headers["Retry-After"] = str(
                int(self.retry_after) if float(self.retry_after).is_integer() else self.retry_after
            )
            details = {"retryAfterSeconds": int(self.retry_after)}
        message = self.message or MESSAGES.get(self.status, f"injected fault {self.status}")
        body = status_body(self.status, message, reason=REASONS.get(self.status, ""), details=details)
        return Response(self.status, body, headers)

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


class Faults:
    """The active rules; the first rule that fires decides."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[FaultRule] = []

    def add(self, rule: FaultRule) -> FaultRule:
        with self._lock:
            self._rules.append(rule)
        return rule

    def remove(self, rule_id: str) -> bool:
        with self._lock:
            before = len(self._rules)
            self._rules = [r for r in self._rules if r.id != rule_id]
            return len(self._rules) != before

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def rules(self) -> list[FaultRule]:
        with self._lock:
            return list(self._rules)

    def match(self, req: Request, entry: RecordedRequest | None = None) -> FaultRule | None:
        """Count the request against every matching rule; return the one that fires."""
        chosen = None
        with self._lock:
            for rule in self._rules:
                if not rule._matches(req):
                    continue
                rule.matched += 1
                if chosen is None and rule._fires():
                    rule.fired += 1
                    chosen = rule
        if chosen is not None and entry is not None:
            entry.fault = chosen.id
        return chosen
