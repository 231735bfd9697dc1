"""Every API request the stand-in received (admin endpoints excluded), for assertions:
method, path, query, content type, body and the status that was answered.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from .transport import Request


@dataclass
class RecordedRequest:
    """One request; `status` is None until answered, 0 for a dropped connection."""

    seq: int
    time: float
    method: str
    path: str
    query: dict[str, list[str]]
    content_type: str
    body: str
    user_agent: str
    status: int | None = None
    fault: str | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def param(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None

    def json(self) -> Any:
        """The body parsed as JSON (None when empty or not JSON)."""
        try:
            return json.loads(self.body) if self.body else None
        except ValueError:
            return None

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "time": self.time,
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "contentType": self.content_type,
            "body": self.body,
            "userAgent": self.user_agent,
            "status": self.status,
            "fault": self.fault,
        }


class RequestLog:
    """A bounded, thread-safe log of requests."""

    def __init__(self, limit: int = 20_000) -> None:
        self._lock = threading.Lock()
        self._entries: deque[RecordedRequest] = deque(maxlen=limit)
        self._seq = itertools.count(1)

    def record(self, req: Request) -> RecordedRequest:
        entry = RecordedRequest(
            seq=next(self._seq),
            time=time.time(),
            method=req.method,
            path=req.path,
            query=req.query,
            content_type=req.headers.get("content-type", ""),
            body=req.body.decode("utf-8", "replace"),
            user_agent=req.headers.get("user-agent", ""),
            headers=dict(req.headers),
        )
        with self._lock:
            self._entries.append(entry)
        return entry

    def finish(self, entry: RecordedRequest, status: int) -> None:
        entry.status = status

    def entries(
        self, *, method: str | None = None, path: str | None = None, path_prefix: str | None = None
    ) -> list[RecordedRequest]:
        """Return recorded requests, oldest first, optionally filtered."""
        with self._lock:
            items = list(self._entries)
        return [
            e
            for e in items
            if (method is None or e.method == method.upper())
            and (path is None or e.path == path)
            and (path_prefix is None or e.path.startswith(path_prefix))
        ]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
