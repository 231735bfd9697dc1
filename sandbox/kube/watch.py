"""Watch streams: newline-delimited JSON events (ADDED, MODIFIED, DELETED, BOOKMARK,
ERROR) over a chunked response.

- No resourceVersion (or "0"): synthetic ADDED events for the current objects first, like
  the real server's "get state and start at most recent".
- A resourceVersion older than the retained history: one ERROR event with a 410 Expired
  Status, then the stream ends (the client must relist).
- Selectors are applied to both sides of a change, so an object that stops matching is
  reported DELETED and one that starts matching ADDED, as the watch cache does.
- `allowWatchBookmarks=true`: BOOKMARK events carry the current resourceVersion, after the
  initial events when `sendInitialEvents=true` (annotated `k8s.io/initial-events-end`), every
  `bookmark_interval` seconds, and just before a timeout ends the stream.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from . import tables
from .errors import bad_request, status_body
from .selectors import fields_match, matches, parse_fields, parse_labels
from .store import Expired, Store
from .transport import Request, StreamResponse

if TYPE_CHECKING:
    from .incoming import Target

DEFAULT_TIMEOUT = 1800.0


def watch_response(store: Store, req: Request, target: Target, bookmark_interval: float) -> StreamResponse:
    """Start a watch and return its stream (selectors are checked before streaming)."""
    labels = parse_labels(req.param("labelSelector"))
    fields = parse_fields(req.param("fieldSelector"), target.rt.plural)
    raw_rv = req.param("resourceVersion") or ""
    try:
        start = int(raw_rv) if raw_rv else 0
    except ValueError as exc:
        raise bad_request(f'resourceVersion: Invalid value: "{raw_rv}": must be an integer') from exc
    timeout = float(req.param("timeoutSeconds") or DEFAULT_TIMEOUT)
    watcher = _Watcher(
        store,
        target,
        labels=labels,
        fields=fields,
        start=start,
        send_initial=start == 0 or req.flag("sendInitialEvents"),
        mark_initial_end=req.flag("sendInitialEvents"),
        bookmarks=req.flag("allowWatchBookmarks"),
        bookmark_interval=bookmark_interval,
        deadline=time.monotonic() + timeout,
        as_table=tables.wants_table(req),
    )
    watcher.snapshot()
    return StreamResponse(200, watcher.run())


class _Watcher:
    def __init__(self, store: Store, target: Target, **opts: Any) -> None:
        self.store = store
        self.target = target
        self.labels = opts["labels"]
        self.fields = opts["fields"]
        self.start = opts["start"]
        self.send_initial = opts["send_initial"]
        self.mark_initial_end = opts["mark_initial_end"]
        self.bookmarks = opts["bookmarks"]
        self.interval = opts["bookmark_interval"]
        self.deadline = opts["deadline"]
        self.as_table = opts["as_table"]
        self.header_sent = False

    def _selected(self, obj: dict[str, Any] | None) -> bool:
        if obj is None:
            return False
        m = obj.get("metadata", {})
        if self.target.namespace and m.get("namespace", "") != self.target.namespace:
            return False
        if self.target.name and m.get("name") != self.target.name:
            return False
        return matches(self.labels, m.get("labels")) and fields_match(self.fields, obj)

    def _line(self, kind: str, obj: dict[str, Any]) -> bytes:
        obj = {"apiVersion": self.target.api_version, "kind": self.target.rt.kind, **obj}
        if self.as_table:
            # kubectl get -w: one-row Tables; column definitions only in the first event.
            obj = tables.table(
                self.target.rt, [obj], {"resourceVersion": obj["metadata"].get("resourceVersion", "")}
            )
            if self.header_sent:
                obj["columnDefinitions"] = []
            self.header_sent = True
        return (json.dumps({"type": kind, "object": obj}) + "\n").encode()

    def _bookmark(self, rv: int, initial_end: bool = False) -> bytes:
        m: dict[str, Any] = {"resourceVersion": str(rv)}
        if initial_end:
            m["annotations"] = {"k8s.io/initial-events-end": "true"}
        return (
            json.dumps(
                {
                    "type": "BOOKMARK",
                    "object": {
                        "kind": self.target.rt.kind,
                        "apiVersion": self.target.api_version,
                        "metadata": m,
                    },
                }
            )
            + "\n"
        ).encode()

    def snapshot(self) -> None:
        """Fix where the watch starts, while the request is handled (not when the first
        chunk is written), so a change made right after the request is never missed."""
        with self.store.lock:
            self.last = self.store.resource_version if self.send_initial else self.start
            self.initial = (
                self.store.list(self.target.rt.key, self.target.namespace or None)
                if self.send_initial
                else []
            )
            try:
                self.store.events_after(self.last)
            except Expired as exc:
                self.first_error: bytes | None = self._expired(exc)
            else:
                self.first_error = None

    def run(self) -> Iterator[bytes]:
        last, initial = self.last, self.initial
        if self.first_error:
            yield self.first_error
            return
        for obj in initial:
            if self._selected(obj):
                yield self._line("ADDED", obj)
        if self.bookmarks and self.mark_initial_end:
            yield self._bookmark(last, initial_end=True)
        next_bookmark = time.monotonic() + self.interval
        while True:
            with self.store.changed:
                if self.store.closed:
                    return
                try:
                    events = self.store.events_after(last)
                    if not events:
                        wait = (
                            min(self.deadline, next_bookmark if self.bookmarks else self.deadline)
                            - time.monotonic()
                        )
                        if wait > 0:
                            self.store.changed.wait(wait)
                        events = self.store.events_after(last)
                except Expired as exc:
                    error: bytes | None = self._expired(exc)
                else:
                    error = None
            if error:
                yield error
                return
            for event in events:
                last = event.rv
                line = self._translate(event)
                if line:
                    yield line
            # Every event up to the store's version has been seen, so `last` is current.
            now = time.monotonic()
            if now >= self.deadline:
                if self.bookmarks:
                    yield self._bookmark(last)
                return
            if self.bookmarks and now >= next_bookmark:
                yield self._bookmark(last)
                next_bookmark = now + self.interval

    def _translate(self, event: Any) -> bytes | None:
        if event.key != self.target.rt.key:
            return None
        was, now = self._selected(event.old), self._selected(event.obj)
        if event.type == "DELETED":
            return self._line("DELETED", event.obj) if now or was else None
        if was and now:
            return self._line("MODIFIED", event.obj)
        if now:
            return self._line("ADDED", event.obj)
        if was:
            return self._line("DELETED", event.obj)
        return None

    def _expired(self, exc: Expired) -> bytes:
        status = status_body(410, str(exc), reason="Expired")
        return (json.dumps({"type": "ERROR", "object": status}) + "\n").encode()
