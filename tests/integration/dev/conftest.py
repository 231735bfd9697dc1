"""The dev server started in-process on free ports, and a client for its JSON endpoints.

`page` is one stack shared by a module's tests (each test uses its own user or namespace);
`fresh_page` is a stack of a test's own, for tests that move the clock.
"""

from __future__ import annotations

import html
import json
import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from gpulease.dev import DevServer, running

_CLICK = re.compile(r'data-click="([^"]*)"[^>]*>([^<]*)</button>')


class Page:
    """Talks to the dev server as the page's script does."""

    def __init__(self, server: DevServer) -> None:
        self.server = server
        self.url = server.url.rstrip("/")

    def call(self, path: str, body: Any = None, *, raw: bytes | None = None,
             content_type: str = "application/json", method: str | None = None) -> tuple[int, Any]:
        """Return (HTTP status, parsed JSON answer) of one request."""
        data = raw if raw is not None else None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method or ("GET" if data is None else "POST"),
                                         headers={"Content-Type": content_type})
        try:
            with urllib.request.urlopen(request, timeout=15) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST and insist on 200."""
        status, answer = self.call(path, body)
        assert status == 200, (path, body, answer)
        return answer

    def state(self, user: str) -> dict[str, Any]:
        status, answer = self.call(f"/api/state?user={user}")
        assert status == 200, answer
        return answer

    def eventually(self, predicate: Callable[[], Any], what: str, timeout: float = 20.0) -> Any:
        """Poll until predicate returns something truthy; fail naming `what` after timeout."""
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")
            time.sleep(0.05)

    def modal(self, user: str, *, other_than: str | None = None) -> dict[str, Any]:
        """Wait for a modal (other than the one named) to be open for the user; return their state."""
        def opened() -> dict[str, Any] | None:
            state = self.state(user)
            return state if state["modal_id"] not in (None, other_than) else None

        return self.eventually(opened, f"a modal for {user}")

    def buttons(self, user: str, section: str) -> list[tuple[str, dict[str, str]]]:
        """Return (label, click reference) of every button in one section, as the page sees them."""
        found = _CLICK.findall(self.state(user)["sections"][section])
        return [(html.unescape(label), json.loads(html.unescape(ref))) for ref, label in found]

    def request(self, user: str, namespace: str, *, tier: str, units: str = "1", duration: str = "8h",
                reason: str = "a test") -> dict[str, Any]:
        """Type /gpu-namespace, fill the form in and submit it; return the submission's answer."""
        before = self.state(user)["modal_id"]
        self.post("/api/command", {"user": user, "command": "/gpu-namespace"})
        view_id = self.modal(user, other_than=before)["modal_id"]
        return self.post("/api/submit", {"user": user, "view_id": view_id, "values": {
            "namespace": namespace, "tier": tier, "units": units, "duration": duration, "reason": reason}})


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> Iterator[Page]:
    with running(Path(tmp_path_factory.mktemp("dev")), port=0, sweep_every=None) as server:
        yield Page(server)


@pytest.fixture
def fresh_page(tmp_path) -> Iterator[Page]:
    with running(tmp_path / "dev", port=0, sweep_every=None) as server:
        yield Page(server)
