"""Thread-safe object storage with one global resourceVersion and an event history.

It plays etcd plus the watch cache: every write gets the next resourceVersion, is appended
to a bounded history that watches resume from (a resourceVersion older than the history is
"too old", 410), and is announced to in-process controllers (the GPU Operator simulation,
the scheduler, the namespace and quota controllers) synchronously, under the same lock, so
their follow-up writes are visible before the client's response is sent.
"""

from __future__ import annotations

import bisect
import copy
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

Key = tuple[str, str]  # (group, plural)


@dataclass(frozen=True)
class Event:
    """One committed change: ADDED, MODIFIED or DELETED, with the state before it."""

    rv: int
    key: Key
    type: str
    obj: dict[str, Any]
    old: dict[str, Any] | None


class Expired(Exception):
    """The requested resourceVersion is older than the retained history."""

    def __init__(self, requested: int, oldest: int) -> None:
        super().__init__(f"too old resource version: {requested} ({oldest})")
        self.requested = requested
        self.oldest = oldest


class Store:
    """Objects by (group, plural) then (namespace, name); all methods are thread-safe."""

    def __init__(self, history_limit: int = 10_000) -> None:
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self.closed = False
        self._objects: dict[Key, dict[tuple[str, str], dict[str, Any]]] = {}
        self._rv = 0
        self._history: list[Event] = []
        self._history_rvs: list[int] = []
        self._floor = 0  # watches may resume from any rv >= floor
        self._limit = history_limit
        self._listeners: list[Callable[[Event], None]] = []

    # -- reads ---------------------------------------------------------------------------
    @property
    def resource_version(self) -> int:
        with self.lock:
            return self._rv

    def get(self, key: Key, namespace: str, name: str) -> dict[str, Any] | None:
        """Return a copy of one object, or None."""
        with self.lock:
            obj = self._objects.get(key, {}).get((namespace, name))
            return copy.deepcopy(obj) if obj is not None else None

    def list(self, key: Key, namespace: str | None = None) -> list[dict[str, Any]]:
        """Return copies of the objects of a type (optionally one namespace), in key order."""
        with self.lock:
            items = self._objects.get(key, {})
            return [copy.deepcopy(items[k]) for k in sorted(items) if namespace is None or k[0] == namespace]

    def namespaced_keys(self) -> list[Key]:
        """Return the types that currently hold at least one object."""
        with self.lock:
            return [k for k, v in self._objects.items() if v]

    # -- writes --------------------------------------------------------------------------
    def create(self, key: Key, obj: dict[str, Any]) -> dict[str, Any]:
        """Store a new object; returns the stored copy with its resourceVersion."""
        return self._commit(key, obj, "ADDED")

    def update(self, key: Key, obj: dict[str, Any]) -> dict[str, Any]:
        """Replace an existing object; returns the stored copy."""
        return self._commit(key, obj, "MODIFIED")

    def delete(self, key: Key, namespace: str, name: str) -> dict[str, Any] | None:
        """Remove an object; the DELETED event carries its last state at a new version."""
        with self.lock:
            obj = self._objects.get(key, {}).get((namespace, name))
            if obj is None:
                return None
            return self._commit(key, obj, "DELETED")

    def _commit(self, key: Key, obj: dict[str, Any], kind: str) -> dict[str, Any]:
        with self.lock:
            m = obj.setdefault("metadata", {})
            ident = (m.get("namespace") or "", m["name"])
            bucket = self._objects.setdefault(key, {})
            old = bucket.get(ident)
            self._rv += 1
            stored = copy.deepcopy(obj)
            stored["metadata"]["resourceVersion"] = str(self._rv)
            if kind == "DELETED":
                bucket.pop(ident, None)
            else:
                bucket[ident] = stored
            event = Event(self._rv, key, kind, stored, old)
            self._remember(event)
            self.changed.notify_all()
            for listener in list(self._listeners):
                try:
                    listener(event)
                except Exception:  # a broken controller must not fail the client's write
                    log.exception("kube.sandbox.controller.failed", extra={"event": kind})
            return copy.deepcopy(stored)

    def _remember(self, event: Event) -> None:
        self._history.append(event)
        self._history_rvs.append(event.rv)
        if len(self._history) > self._limit:
            cut = len(self._history) // 2
            self._floor = self._history_rvs[cut - 1]
            del self._history[:cut]
            del self._history_rvs[:cut]

    # -- watch support -------------------------------------------------------------------
    def events_after(self, rv: int) -> list[Event]:
        """Return the events after rv; raises Expired when rv predates the history."""
        with self.lock:
            if rv < self._floor:
                raise Expired(rv, self._floor + 1)
            start = bisect.bisect_right(self._history_rvs, rv)
            return self._history[start:]

    def compact(self) -> int:
        """Forget the history (like an etcd compaction); returns the new oldest version."""
        with self.lock:
            self._history.clear()
            self._history_rvs.clear()
            self._floor = self._rv
            self.changed.notify_all()
            return self._floor

    def subscribe(self, listener: Callable[[Event], None]) -> None:
        """Call listener(event) after every committed write, under the store lock."""
        self._listeners.append(listener)

    def close(self) -> None:
        """Wake every waiting watch so it can end."""
        with self.lock:
            self.closed = True
            self.changed.notify_all()
