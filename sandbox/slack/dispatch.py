"""Answering Web API calls and response_url posts: parse, inject faults, check the token,
run the method, record the call.

Part of sandbox.slack; the HTTP handler calls these.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from .context import Request
from .errors import ApiError
from .methods import METHODS

if TYPE_CHECKING:
    from .server import SlackSandbox

log = logging.getLogger(__name__)


@dataclass
class Reply:
    """An HTTP answer: status, body and extra headers."""

    status: int
    body: bytes
    content_type: str = "application/json; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, status: int, data: Any, headers: dict[str, str] | None = None) -> Reply:
        """Return a JSON reply."""
        return cls(status, json.dumps(data).encode(), headers=headers or {})

    @classmethod
    def text(cls, status: int, text: str) -> Reply:
        """Return a plain-text reply (response_url answers are text, like Slack's)."""
        return cls(status, text.encode(), "text/plain; charset=utf-8")


def parse_arguments(query: str, headers: Any, body: bytes) -> tuple[dict[str, Any], str | None]:
    """Return (arguments, token) from the query string and a form or JSON body, as Slack accepts."""
    args: dict[str, Any] = dict(parse_qsl(query, keep_blank_values=True))
    content_type = (headers.get("Content-Type") or "").split(";")[0].strip().lower()
    if body:
        if content_type == "application/json":
            try:
                data = json.loads(body)
            except ValueError:
                raise ApiError("invalid_json") from None
            if not isinstance(data, dict):
                raise ApiError("invalid_json")
            args.update(data)
        elif content_type in ("application/x-www-form-urlencoded", "text/plain", ""):
            try:
                args.update(parse_qsl(body.decode(), keep_blank_values=True, strict_parsing=True))
            except (UnicodeDecodeError, ValueError):
                raise ApiError("invalid_form_data") from None
        else:
            raise ApiError("invalid_post_type")
    token = None
    authorization = headers.get("Authorization") or ""
    if authorization.lower().startswith("bearer "):
        token = authorization[7:].strip()
    # A token in the body only counts for form posts; JSON bodies must use the header.
    form_token = args.pop("token", None)
    return args, token or (form_token if content_type != "application/json" else None)


def call_method(sandbox: SlackSandbox, name: str, query: str, headers: Any, body: bytes) -> Reply:
    """Answer one Web API call and record it."""
    at = sandbox.clock()
    try:
        args, token = parse_arguments(query, headers, body)
    except ApiError as refusal:
        return _finish(sandbox, name, {}, None, at, refusal.status, refusal.body())
    fault = sandbox.fault_plan.take(name)
    if fault is not None:
        return _faulted(sandbox, name, args, token, at, fault)
    try:
        handler = METHODS.get(name)
        if handler is None:
            raise ApiError("unknown_method", status=404)
        bot = _authenticate(sandbox, token)
        status, data = 200, {"ok": True, **handler(Request(args, bot, sandbox.world))}
    except ApiError as refusal:
        status, data = refusal.status, refusal.body()
    return _finish(sandbox, name, args, token, at, status, data)


def _finish(sandbox: SlackSandbox, name: str, args: dict[str, Any], token: str | None, at: float,
            status: int, data: dict[str, Any]) -> Reply:
    sandbox.call_log.record(method=name, args=args, token=token, at=at, status=status, response=data)
    log.debug("slack_sandbox.call method=%s status=%s ok=%s", name, status, data.get("ok"))
    return Reply.json(status, data)


def post_webhook(sandbox: SlackSandbox, hook_id: str, query: str, body: bytes) -> Reply:
    """Deliver a response_url post and record it as a call of "response_url"."""
    at = sandbox.clock()
    immediate = dict(parse_qsl(query)).get("immediate") == "1"
    fault = None if immediate else sandbox.fault_plan.take("response_url")
    try:
        payload = json.loads(body or b"null")
    except ValueError:
        payload = None
    args = {"hook": hook_id, "payload": payload, "immediate": immediate}
    if fault is not None:
        return _faulted(sandbox, "response_url", args, None, at, fault)
    try:
        effect = sandbox.response_urls.deliver(hook_id, payload, sandbox.bot, immediate=immediate)
        status, text, data = 200, "ok", {"ok": True, **effect}
    except ApiError as refusal:
        status, text, data = refusal.status, refusal.error, refusal.body()
    sandbox.call_log.record(method="response_url", args=args, token=None, at=at, status=status, response=data)
    return Reply.text(status, text)


def _authenticate(sandbox: SlackSandbox, token: str | None) -> Any:
    if not token:
        raise ApiError("not_authed")
    bot = sandbox.bot_for(token)
    if bot is None:
        raise ApiError("invalid_auth")
    return bot


def _faulted(sandbox: SlackSandbox, name: str, args: dict[str, Any], token: str | None, at: float,
             fault: Any) -> Reply:
    if fault.delay:
        # A deliberately slow answer is the fault being simulated, not a test waiting.
        time.sleep(fault.delay)
    sandbox.call_log.record(method=name, args=args, token=token, at=at, status=fault.status,
                         response=fault.body(), fault=True)
    log.debug("slack_sandbox.fault method=%s status=%s error=%s", name, fault.status, fault.error)
    return Reply.json(fault.status, fault.body(), fault.headers())
