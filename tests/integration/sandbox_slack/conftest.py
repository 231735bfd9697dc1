"""Fixtures for the Slack sandbox's tests: a running sandbox on a manual clock, the real
slack_sdk WebClient pointed at it, and a recorder standing in for the bot's HTTP endpoint
(to check what the signing client sends)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from slack_sdk import WebClient

from sandbox.slack import DEFAULT_SIGNING_SECRET, DEFAULT_TOKEN, ManualClock, SignedClient, SlackSandbox


@pytest.fixture
def clock() -> ManualClock:
    """Return the clock the sandbox runs on; tests advance it instead of sleeping."""
    return ManualClock()


@pytest.fixture
def slack(clock: ManualClock) -> Iterator[SlackSandbox]:
    """Return a running sandbox on the manual clock, stopped after the test."""
    with SlackSandbox(clock=clock) as sandbox:
        yield sandbox


@pytest.fixture
def client(slack: SlackSandbox) -> WebClient:
    """Return the real WebClient with the sandbox's bot token, without extra retry handlers."""
    return WebClient(token=DEFAULT_TOKEN, base_url=slack.url)


@dataclass
class Recorded:
    """A request the recorder received."""

    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Recorder:
    """A stand-in for the bot's endpoint: keeps each request and answers with `reply`."""

    url: str
    requests: list[Recorded] = field(default_factory=list)
    reply_status: int = 200
    reply_body: bytes = b""
    reply_type: str = "application/json"


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    """Return a running recorder at <url>/slack/events."""
    state: dict[str, Any] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            rec: Recorder = state["recorder"]
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            rec.requests.append(Recorded(self.path, dict(self.headers.items()), body))
            self.send_response(rec.reply_status)
            self.send_header("Content-Type", rec.reply_type)
            self.send_header("Content-Length", str(len(rec.reply_body)))
            self.end_headers()
            self.wfile.write(rec.reply_body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state["recorder"] = Recorder(f"http://127.0.0.1:{server.server_address[1]}/slack/events")
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield state["recorder"]
    finally:
        server.shutdown()
        thread.join()
        server.server_close()


@pytest.fixture
def to_recorder(recorder: Recorder, slack: SlackSandbox) -> SignedClient:
    """Return a signing client aimed at the recorder, registering triggers with the sandbox."""
    return SignedClient(recorder.url, DEFAULT_SIGNING_SECRET, slack.url)
