"""SlackSandbox: the local Slack Web API server and its Python API.

    with SlackSandbox(port=0) as slack:
        client = WebClient(token=DEFAULT_TOKEN, base_url=slack.url)   # slack.url ends in /api/
        client.chat_postMessage(channel="C0APPROVALS", text="hi")
        assert slack.messages("C0APPROVALS")[0]["text"] == "hi"

A ThreadingHTTPServer in a background thread serves the Web API under /api/<method>,
response URLs under /webhook/<id> and the admin endpoints under /_sandbox/ (admin.py).
Part of sandbox.slack; imports nothing of the product.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from . import admin
from .calls import Call, CallLog
from .clock import Clock, wall_clock
from .context import World
from .directory import Directory
from .dispatch import Reply, call_method, post_webhook
from .faults import Fault, FaultPlan
from .state import Bot, Conversations
from .surfaces import Surfaces
from .webhooks import ResponseUrls

log = logging.getLogger(__name__)

DEFAULT_TOKEN = "xoxb-sandbox-token"
DEFAULT_SIGNING_SECRET = "sandbox-signing-secret"
"""Not used by the server: the secret tests give both the Bolt app and the signing client."""


class SlackSandbox:
    """A local stand-in for the Slack Web API that records calls and injects faults."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        tokens: Iterable[str] | Mapping[str, Bot] = (DEFAULT_TOKEN,),
        directory: Directory | None = None,
        clock: Clock | None = None,
        bot: Bot | None = None,
    ) -> None:
        self.clock: Clock = clock or wall_clock
        self.directory = directory or Directory()
        self.bot = bot or Bot()
        self._tokens: dict[str, Bot] = (
            dict(tokens) if isinstance(tokens, Mapping) else {token: self.bot for token in tokens}
        )
        self.call_log = CallLog()
        self.fault_plan = FaultPlan()
        self.conversations = Conversations(self.directory, self.clock)
        self.surfaces = Surfaces(self.clock, self.directory.team.id)
        self.response_urls = ResponseUrls(self.conversations, self.clock)
        self._httpd = ThreadingHTTPServer((host, port), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.sandbox = self  # type: ignore[attr-defined]
        bound_host, bound_port = self._httpd.server_address[:2]
        self.root_url = f"http://{bound_host}:{bound_port}"
        self.world = World(self.directory, self.conversations, self.surfaces, self.response_urls,
                           self.clock, self.root_url)
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The Web API base URL for WebClient(base_url=...), ending in /api/."""
        return f"{self.root_url}/api/"

    @property
    def port(self) -> int:
        """The port the server listens on (useful with port=0)."""
        return int(self._httpd.server_address[1])

    def start(self) -> SlackSandbox:
        """Serve in a background thread and return self."""
        if self._thread is None:
            # A short poll interval keeps stop() fast: shutdown() waits for the next poll.
            self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.01},
                                            name="slack-sandbox", daemon=True)
            self._thread.start()
            log.info("slack_sandbox.started url=%s", self.url)
        return self

    def serve_forever(self) -> None:
        """Serve in the calling thread until interrupted (python -m sandbox.slack)."""
        self._httpd.serve_forever()

    def stop(self) -> None:
        """Stop serving and release the port."""
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join()
            self._thread = None
        self._httpd.server_close()

    def __enter__(self) -> SlackSandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- configuration -----------------------------------------------------------------------

    def add_token(self, token: str, bot: Bot | None = None) -> None:
        """Accept another token, standing for `bot` (the sandbox's own bot by default)."""
        self._tokens[token] = bot or self.bot

    def bot_for(self, token: str) -> Bot | None:
        """Return the bot a token stands for, or None when the token is unknown."""
        return self._tokens.get(token)

    def add_fault(self, method: str, **options: Any) -> Fault:
        """Inject a fault: status (429/500/503/200), error, nth, times, retry_after, delay (faults.py)."""
        return self.fault_plan.add(method, **options)

    def faults(self) -> list[Fault]:
        """Return the injected faults with their progress (spent ones included)."""
        return self.fault_plan.list()

    def clear_faults(self) -> None:
        """Remove every injected fault."""
        self.fault_plan.clear()

    def reset(self) -> None:
        """Forget calls, messages, views, triggers, response URLs and faults; keep directory and tokens."""
        self.fault_plan.clear()
        self.conversations.reset()
        self.surfaces.reset()
        self.response_urls.reset()
        self.call_log.clear()

    # -- what Slack would hand the app -------------------------------------------------------

    def issue_trigger(self, user_id: str, trigger_id: str | None = None) -> str:
        """Register a trigger id for the user, valid for 3 s on the sandbox clock."""
        return self.surfaces.issue_trigger(user_id, trigger_id)

    def issue_response_url(self, *, channel: str, user_id: str, message_ts: str | None = None) -> str:
        """Return a response_url for an interaction in `channel` (about message_ts, if any)."""
        return f"{self.root_url}/webhook/{self.response_urls.issue(channel=channel, user_id=user_id, message_ts=message_ts)}"

    def dm_channel(self, user_id: str) -> str:
        """Return (opening if needed) the bot's DM channel with the user."""
        return self.conversations.open_dm(user_id)[0]

    def post_as_user(self, channel: str, user_id: str, text: str, *, thread_ts: str | None = None) -> dict[str, Any]:
        """Store a message written by a person (not this bot), e.g. to test cant_update_message."""
        channel_id = self.conversations.resolve(channel)
        message = {"text": text, "user": user_id, **({"thread_ts": thread_ts} if thread_ts else {})}
        stored = self.conversations.post(channel_id, message)
        self.call_log.poke()  # wake wait_for_messages, which re-checks after each change
        return {"channel": channel_id, **stored}

    # -- reading what the app did ------------------------------------------------------------

    def calls(self, method: str | None = None) -> list[Call]:
        """Return recorded calls of one method (all when None; "response_url" for webhook posts)."""
        return self.call_log.calls(method)

    def wait_for_calls(self, method: str | None, n: int = 1, timeout: float = 5.0, *,
                       ok_only: bool = False) -> list[Call]:
        """Return the first n calls of a method once they arrived; TimeoutError after timeout s."""
        return self.call_log.wait_for(method, n, timeout, ok_only=ok_only)

    def messages(self, channel: str, thread_ts: str | None = None) -> list[dict[str, Any]]:
        """Return a channel's top-level messages, or one thread's replies (parent excluded)."""
        return self.conversations.messages(self.conversations.resolve(channel), thread_ts)

    def wait_for_messages(self, channel: str, n: int = 1, *, thread_ts: str | None = None,
                          timeout: float = 5.0) -> list[dict[str, Any]]:
        """Return a channel's (or thread's) messages once there are at least n; TimeoutError otherwise."""
        self.call_log.wait_until(lambda: len(self.messages(channel, thread_ts)) >= n, timeout,
                              f"{n} message(s) in {channel}" + (f" thread {thread_ts}" if thread_ts else ""))
        return self.messages(channel, thread_ts)

    def ephemerals(self, channel: str | None = None, user: str | None = None) -> list[dict[str, Any]]:
        """Return ephemeral messages (chat.postEphemeral and response_url), optionally filtered."""
        channel_id = self.conversations.resolve(channel) if channel else None
        return self.conversations.ephemerals(channel_id, user)

    def views(self, user: str) -> list[dict[str, Any]]:
        """Return the user's open modals, root first (empty when none is open)."""
        return self.surfaces.stack(user)

    def view(self, view_id: str) -> dict[str, Any] | None:
        """Return any view (modal or home) by id, or None."""
        return self.surfaces.get(view_id)

    def view_errors(self, view_id: str) -> dict[str, str]:
        """Return the field errors the app answered the last submission of a modal with."""
        return self.surfaces.errors(view_id)

    def home(self, user: str) -> dict[str, Any] | None:
        """Return the user's published App Home view, or None."""
        return self.surfaces.home(user)


class _Handler(BaseHTTPRequestHandler):
    server_version = "SlackSandbox/1.0"

    def do_GET(self) -> None:  # noqa: N802 - the name http.server dispatches to
        self._route("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._route("POST")

    def do_DELETE(self) -> None:  # noqa: N802
        self._route("DELETE")

    def _route(self, verb: str) -> None:
        sandbox: SlackSandbox = self.server.sandbox  # type: ignore[attr-defined]
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if url.path.startswith("/api/"):
            reply = call_method(sandbox, url.path[len("/api/"):], url.query, self.headers, body)
        elif url.path.startswith("/webhook/") and verb == "POST":
            reply = post_webhook(sandbox, url.path[len("/webhook/"):], url.query, body)
        elif url.path.startswith("/_sandbox/"):
            reply = admin.route(sandbox, verb, url.path, url.query, body)
        else:
            reply = Reply.json(404, {"ok": False, "error": "not_found"})
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.body)))
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(reply.body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's signature
        log.debug("slack_sandbox.http " + format, *args)
