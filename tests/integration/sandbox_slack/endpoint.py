"""A stand-in for the bot's HTTP endpoint that keeps every request, to check what the
signing client sends."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


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


@contextmanager
def serve_recorder() -> Iterator[Recorder]:
    """Serve a recorder at <url>/slack/events in a thread until the block ends."""
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
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    try:
        yield state["recorder"]
    finally:
        server.shutdown()
        thread.join()
        server.server_close()
