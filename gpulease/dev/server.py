"""The dev page's HTTP server: the page at /, and small JSON endpoints under /api/.

Standard library only (http.server), bound to 127.0.0.1 and answering only requests addressed
to it; POSTs must be JSON, which a foreign page cannot send without a CORS preflight this
server never grants. Every handler validates its input and answers JSON; an unexpected
failure is logged with a correlation id and answered as a JSON error naming that id, never as
a traceback. `running(workdir)` starts the embedded stack and this server together, for the
CLI and for tests. Imported by gpulease.cli_dev and tests.
"""

from __future__ import annotations

import contextlib
import json
import logging
import secrets
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from gpulease.dev import page
from gpulease.dev.inputs import BadInput, choice, string
from gpulease.dev.session import STEPS, USERS, DevSession
from gpulease.embedded import embedded

logger = logging.getLogger(__name__)
MAX_BODY = 64 * 1024
LOCAL_NAMES = ("127.0.0.1", "localhost")

Handler = Callable[[DevSession, dict[str, Any]], dict[str, Any]]


def _user(body: dict[str, Any]) -> str:
    return choice(body, "user", USERS)


def _click(session: DevSession, body: dict[str, Any]) -> dict[str, Any]:
    user = _user(body)
    ref = {name: string(body, name, required=name in ("surface", "action_id"))
           for name in ("surface", "channel", "ts", "view_id", "block_id", "action_id")}
    return session.click(user, ref)


def _submit(session: DevSession, body: dict[str, Any]) -> dict[str, Any]:
    user = _user(body)
    return session.submit(user, string(body, "view_id"), body.get("values"))


POSTS: dict[str, Handler] = {
    "/api/command": lambda s, b: s.command(_user(b), string(b, "command", limit=4000)),
    "/api/click": _click,
    "/api/submit": _submit,
    "/api/close": lambda s, b: s.close(_user(b), string(b, "view_id")),
    "/api/home": lambda s, b: s.open_home(_user(b)),
    "/api/advance": lambda s, b: s.advance(choice(b, "by", STEPS)),
}


def _state(session: DevSession, query: dict[str, Any]) -> dict[str, Any]:
    state = session.state(_user(query))
    if query.get("since") == state["version"]:
        return {"version": state["version"], "changed": False}
    return {**state, "changed": True}


GETS: dict[str, Handler] = {
    "/api/state": _state,
    "/api/capacity": lambda s, q: s.capacity(),
}


class PortUnavailable(Exception):
    """The page's port cannot be bound (taken, or not allowed)."""


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "gpulease-dev/1.0"

    def do_GET(self) -> None:  # noqa: N802 - the name http.server dispatches to
        if not self._local():
            return
        url = urlsplit(self.path)
        if url.path in ("/", "/index.html"):
            self._send(200, page.HTML.encode(), "text/html; charset=utf-8")
            return
        handler = GETS.get(url.path)
        if handler is None:
            self._error(405 if url.path in POSTS else 404,
                        "use POST" if url.path in POSTS else f"no endpoint {url.path}")
            return
        query = {k: v[-1] for k, v in parse_qs(url.query, max_num_fields=20).items()}
        self._run(handler, query)

    def do_POST(self) -> None:  # noqa: N802
        if not self._local():
            return
        path = urlsplit(self.path).path
        handler = POSTS.get(path)
        if handler is None:
            self._error(405 if path in GETS else 404, "use GET" if path in GETS else f"no endpoint {path}")
            return
        try:
            body = self._body()
        except BadInput as exc:
            self._error(exc.status, exc.message)
            return
        self._run(handler, body)

    def _local(self) -> bool:
        """Refuse requests addressed to another name (a DNS-rebinding page reaching this port)."""
        host = (self.headers.get("Host") or "").rsplit(":", 1)[0]
        if host in LOCAL_NAMES:
            return True
        self._error(403, f"the dev page answers only at 127.0.0.1 or localhost, not {host!r}")
        return False

    def _body(self) -> dict[str, Any]:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            raise BadInput("Content-Length must be a number") from None
        if length > MAX_BODY:
            raise BadInput(f"the body is larger than {MAX_BODY} bytes", 413)
        if not (self.headers.get("Content-Type") or "").startswith("application/json"):
            raise BadInput("send JSON (Content-Type: application/json)", 415)
        try:
            body = json.loads(self.rfile.read(length) or b"null")
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise BadInput(f"the body is not JSON: {exc}") from None
        if not isinstance(body, dict):
            raise BadInput("the body must be a JSON object")
        return body

    def _run(self, handler: Handler, data: dict[str, Any]) -> None:
        try:
            result = handler(self.server.session, data)
        except BadInput as exc:
            self._error(exc.status, exc.message)
            return
        except Exception:  # noqa: BLE001 - answered as JSON with an id to find the logged traceback
            error_id = secrets.token_hex(4)
            logger.exception("dev.request.failed error_id=%s path=%s", error_id, self.path,
                             extra={"event": "dev.request.failed", "error_id": error_id})
            self._error(500, f"the dev server failed; see its log for error {error_id}", error_id=error_id)
            return
        self._send(200, json.dumps(result).encode(), "application/json")

    def _error(self, status: int, message: str, **extra: str) -> None:
        self._send(status, json.dumps({"error": message, **extra}).encode(), "application/json")

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's signature
        logger.debug("dev.http " + format, *args)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    session: DevSession


class DevServer:
    """The dev page on 127.0.0.1; `port=0` picks a free port. Binds at once, serves from `start`."""

    def __init__(self, *, port: int = 0) -> None:
        self._server = _Server(("127.0.0.1", port), _Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="dev-page", daemon=True)
        self.session: DevSession | None = None

    @property
    def url(self) -> str:
        """Return the page's address."""
        return f"http://127.0.0.1:{self._server.server_port}/"

    def start(self, session: DevSession) -> DevServer:
        """Serve `session` on a background thread."""
        self.session = self._server.session = session
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port (again: nothing)."""
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(timeout=5)
        self._server.server_close()


@contextlib.contextmanager
def running(workdir: Path, *, port: int = 0, sweep_every: float | None = 60.0) -> Iterator[DevServer]:
    """Start the embedded stack and the dev page; stop both on exit."""
    try:
        server = DevServer(port=port)  # bind first, so a taken port fails before the stack starts
    except OSError as exc:
        raise PortUnavailable(f"cannot serve on 127.0.0.1:{port}: {exc.strerror or exc}") from exc
    try:
        with embedded(workdir, sweep_every=sweep_every) as env:
            server.start(DevSession(env))
            try:
                yield server
            finally:
                server.stop()  # no request may reach the stack while it stops
    finally:
        server.stop()
