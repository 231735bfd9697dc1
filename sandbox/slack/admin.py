"""The sandbox's own HTTP endpoints under /_sandbox/, for tests and tools in other processes.

    GET    /_sandbox/calls?method=M                 {"calls": [...]}  (all methods without M)
    GET    /_sandbox/wait?method=M&n=N&timeout=S    {"calls": [...]} once N calls arrived, else 408
    GET    /_sandbox/messages?channel=C&thread_ts=T {"messages": [...]}; no channel: {"channels": {...}}
                           ...&n=N&timeout=S        first waits until there are N messages (else 408)
    POST   /_sandbox/messages                       seed a user's message {channel, user, text[, thread_ts]}
    GET    /_sandbox/ephemerals?channel=C&user=U    {"ephemerals": [...]}
    GET    /_sandbox/views?user=U                   {"views": [...]}  (open modals, root first)
    GET    /_sandbox/home?user=U                    {"view": {...} | null}
    GET    /_sandbox/directory                      team, users, usergroups, channels, bot
    GET    /_sandbox/faults                         {"faults": [...]}
    POST   /_sandbox/faults                         add one (see faults.py for the fields)
    DELETE /_sandbox/faults                         remove all
    POST   /_sandbox/triggers                       {user_id[, trigger_id]} -> {"trigger_id"}
    POST   /_sandbox/response_urls                  {channel, user_id[, message_ts]} -> {"response_url"}
    POST   /_sandbox/view_submissions               {view_id, response}: apply the app's answer
    POST   /_sandbox/view_closed                    {view_id}: the user closed the modal
    POST   /_sandbox/reset                          forget calls, messages, views, triggers, faults

Part of sandbox.slack.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from .dispatch import Reply

if TYPE_CHECKING:
    from .server import SlackSandbox

MAX_WAIT_S = 60.0


def route(sandbox: SlackSandbox, verb: str, path: str, query: str, body: bytes) -> Reply:
    """Answer one admin request."""
    params = dict(parse_qsl(query))
    try:
        data = json.loads(body) if body else {}
    except ValueError:
        return Reply.json(400, {"error": "body is not JSON"})
    handler = _ROUTES.get((verb, path.removeprefix("/_sandbox/").strip("/")))
    if handler is None:
        return Reply.json(404, {"error": f"no admin endpoint {verb} {path}"})
    try:
        return handler(sandbox, params, data)
    except (KeyError, TypeError, ValueError) as exc:
        return Reply.json(400, {"error": f"{type(exc).__name__}: {exc}"})


def _calls(sandbox: SlackSandbox, params: dict[str, str], _: Any) -> Reply:
    return Reply.json(200, {"calls": [c.to_dict() for c in sandbox.calls(params.get("method"))]})


def _wait(sandbox: SlackSandbox, params: dict[str, str], _: Any) -> Reply:
    timeout = min(float(params.get("timeout", 5)), MAX_WAIT_S)
    try:
        calls = sandbox.wait_for_calls(params.get("method"), int(params.get("n", 1)), timeout,
                                       ok_only=params.get("ok_only") == "1")
    except TimeoutError as exc:
        return Reply.json(408, {"error": "timeout", "detail": str(exc)})
    return Reply.json(200, {"calls": [c.to_dict() for c in calls]})


def _messages(sandbox: SlackSandbox, params: dict[str, str], _: Any) -> Reply:
    if "channel" not in params:
        return Reply.json(200, {"channels": sandbox.conversations.channels()})
    if "n" in params:
        try:
            sandbox.wait_for_messages(params["channel"], int(params["n"]), thread_ts=params.get("thread_ts"),
                                      timeout=min(float(params.get("timeout", 5)), MAX_WAIT_S))
        except TimeoutError as exc:
            return Reply.json(408, {"error": "timeout", "detail": str(exc)})
    return Reply.json(200, {"messages": sandbox.messages(params["channel"], params.get("thread_ts"))})


def _seed_message(sandbox: SlackSandbox, _: dict[str, str], data: dict[str, Any]) -> Reply:
    message = sandbox.post_as_user(data["channel"], data["user"], data["text"], thread_ts=data.get("thread_ts"))
    return Reply.json(200, {"ok": True, "message": message})


def _ephemerals(sandbox: SlackSandbox, params: dict[str, str], _: Any) -> Reply:
    return Reply.json(200, {"ephemerals": sandbox.ephemerals(params.get("channel"), params.get("user"))})


def _views(sandbox: SlackSandbox, params: dict[str, str], _: Any) -> Reply:
    return Reply.json(200, {"views": sandbox.views(params["user"])})


def _home(sandbox: SlackSandbox, params: dict[str, str], _: Any) -> Reply:
    return Reply.json(200, {"view": sandbox.home(params["user"])})


def _directory(sandbox: SlackSandbox, _: dict[str, str], __: Any) -> Reply:
    return Reply.json(200, {**sandbox.directory.to_dict(), "bot": vars(sandbox.bot)})


def _faults(sandbox: SlackSandbox, _: dict[str, str], __: Any) -> Reply:
    return Reply.json(200, {"faults": [f.to_dict() for f in sandbox.faults()]})


def _add_fault(sandbox: SlackSandbox, _: dict[str, str], data: dict[str, Any]) -> Reply:
    fault = sandbox.add_fault(**data)
    return Reply.json(200, {"ok": True, "fault": fault.to_dict()})


def _clear_faults(sandbox: SlackSandbox, _: dict[str, str], __: Any) -> Reply:
    sandbox.clear_faults()
    return Reply.json(200, {"ok": True})


def _trigger(sandbox: SlackSandbox, _: dict[str, str], data: dict[str, Any]) -> Reply:
    return Reply.json(200, {"trigger_id": sandbox.issue_trigger(data["user_id"], data.get("trigger_id"))})


def _response_url(sandbox: SlackSandbox, _: dict[str, str], data: dict[str, Any]) -> Reply:
    url = sandbox.issue_response_url(channel=data["channel"], user_id=data["user_id"],
                                     message_ts=data.get("message_ts"))
    return Reply.json(200, {"response_url": url})


def _view_submission(sandbox: SlackSandbox, _: dict[str, str], data: dict[str, Any]) -> Reply:
    sandbox.surfaces.answer_submission(data["view_id"], data.get("response"), sandbox.bot)
    return Reply.json(200, {"ok": True})


def _view_closed(sandbox: SlackSandbox, _: dict[str, str], data: dict[str, Any]) -> Reply:
    sandbox.surfaces.close(data["view_id"])
    return Reply.json(200, {"ok": True})


def _reset(sandbox: SlackSandbox, _: dict[str, str], __: Any) -> Reply:
    sandbox.reset()
    return Reply.json(200, {"ok": True})


_ROUTES = {
    ("GET", "calls"): _calls,
    ("GET", "wait"): _wait,
    ("GET", "messages"): _messages,
    ("POST", "messages"): _seed_message,
    ("GET", "ephemerals"): _ephemerals,
    ("GET", "views"): _views,
    ("GET", "home"): _home,
    ("GET", "directory"): _directory,
    ("GET", "faults"): _faults,
    ("POST", "faults"): _add_fault,
    ("DELETE", "faults"): _clear_faults,
    ("POST", "triggers"): _trigger,
    ("POST", "response_urls"): _response_url,
    ("POST", "view_submissions"): _view_submission,
    ("POST", "view_closed"): _view_closed,
    ("POST", "reset"): _reset,
}
