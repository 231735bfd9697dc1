"""RemoteSandbox: the sandbox's Python API over its /_sandbox/ HTTP endpoints.

For code in another process than the sandbox (a Celery worker's test, the demo's web page,
the signing client): `RemoteSandbox(url).wait_for_calls("chat.update", 1)`. Results are the
JSON forms (calls as dicts). Part of sandbox.slack.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlencode


def root_of(url: str) -> str:
    """Return the server root of a sandbox URL given as root, .../api/ or .../_sandbox/."""
    url = url.rstrip("/")
    for suffix in ("/api", "/_sandbox"):
        url = url.removesuffix(suffix)
    return url


class RemoteSandbox:
    """A client of a running sandbox's admin endpoints."""

    def __init__(self, url: str, *, timeout: float = 10.0) -> None:
        self.root_url = root_of(url)
        self._timeout = timeout

    def _request(self, verb: str, path: str, params: dict[str, Any] | None = None,
                 data: dict[str, Any] | None = None, timeout: float | None = None) -> dict[str, Any]:
        query = urlencode({k: v for k, v in (params or {}).items() if v is not None})
        url = f"{self.root_url}/_sandbox/{path}" + (f"?{query}" if query else "")
        body = json.dumps(data).encode() if data is not None else None
        request = urllib.request.Request(url, data=body, method=verb,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=timeout or self._timeout) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as error:
            detail = error.read().decode(errors="replace")
            if error.code == 408:
                raise TimeoutError(json.loads(detail).get("detail", detail)) from None
            raise RuntimeError(f"sandbox {verb} {path}: HTTP {error.code}: {detail}") from None

    def calls(self, method: str | None = None) -> list[dict[str, Any]]:
        """Return recorded calls of one method (all when None)."""
        return self._request("GET", "calls", {"method": method})["calls"]

    def wait_for_calls(self, method: str | None, n: int = 1, timeout: float = 5.0, *,
                       ok_only: bool = False) -> list[dict[str, Any]]:
        """Return the first n calls of a method once they arrived; TimeoutError after timeout s."""
        params = {"method": method, "n": n, "timeout": timeout, "ok_only": "1" if ok_only else None}
        return self._request("GET", "wait", params, timeout=timeout + self._timeout)["calls"]

    def messages(self, channel: str, thread_ts: str | None = None) -> list[dict[str, Any]]:
        """Return a channel's top-level messages, or one thread's replies."""
        return self._request("GET", "messages", {"channel": channel, "thread_ts": thread_ts})["messages"]

    def wait_for_messages(self, channel: str, n: int = 1, *, thread_ts: str | None = None,
                          timeout: float = 5.0) -> list[dict[str, Any]]:
        """Return a channel's (or thread's) messages once there are at least n."""
        params = {"channel": channel, "thread_ts": thread_ts, "n": n, "timeout": timeout}
        return self._request("GET", "messages", params, timeout=timeout + self._timeout)["messages"]

    def post_as_user(self, channel: str, user_id: str, text: str, *, thread_ts: str | None = None) -> dict[str, Any]:
        """Store a message written by a person, not the bot."""
        data = {"channel": channel, "user": user_id, "text": text, "thread_ts": thread_ts}
        return self._request("POST", "messages", data=data)["message"]

    def ephemerals(self, channel: str | None = None, user: str | None = None) -> list[dict[str, Any]]:
        """Return ephemeral messages, optionally filtered by channel and user."""
        return self._request("GET", "ephemerals", {"channel": channel, "user": user})["ephemerals"]

    def views(self, user: str) -> list[dict[str, Any]]:
        """Return the user's open modals, root first."""
        return self._request("GET", "views", {"user": user})["views"]

    def home(self, user: str) -> dict[str, Any] | None:
        """Return the user's published home view, or None."""
        return self._request("GET", "home", {"user": user})["view"]

    def directory(self) -> dict[str, Any]:
        """Return the team, users, user groups and channels."""
        return self._request("GET", "directory")

    def add_fault(self, method: str, **options: Any) -> dict[str, Any]:
        """Inject a fault (fields as in faults.py) and return it."""
        return self._request("POST", "faults", data={"method": method, **options})["fault"]

    def faults(self) -> list[dict[str, Any]]:
        """Return the injected faults with their progress."""
        return self._request("GET", "faults")["faults"]

    def clear_faults(self) -> None:
        """Remove every injected fault."""
        self._request("DELETE", "faults")

    def issue_trigger(self, user_id: str, trigger_id: str | None = None) -> str:
        """Register a trigger id for the user and return it."""
        return self._request("POST", "triggers", data={"user_id": user_id, "trigger_id": trigger_id})["trigger_id"]

    def issue_response_url(self, *, channel: str, user_id: str, message_ts: str | None = None) -> str:
        """Return a response_url for an interaction in a channel."""
        data = {"channel": channel, "user_id": user_id, "message_ts": message_ts}
        return self._request("POST", "response_urls", data=data)["response_url"]

    def answer_view_submission(self, view_id: str, response: dict[str, Any] | None) -> None:
        """Tell the sandbox how the app answered a view_submission (close, errors, update, ...)."""
        self._request("POST", "view_submissions", data={"view_id": view_id, "response": response})

    def close_view(self, view_id: str) -> None:
        """Close a modal as the user's Cancel button would."""
        self._request("POST", "view_closed", data={"view_id": view_id})

    def reset(self) -> None:
        """Forget calls, messages, views, triggers, response URLs and faults."""
        self._request("POST", "reset")
