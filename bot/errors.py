"""The one place where a listener's failure becomes a message, with a correlation id.

Listeners never catch-and-log: a `DomainError` (not an approver, already decided, over
quota...) propagates here and is shown as is; anything else is logged with its traceback and
the user sees only the reference to quote. The answer goes where the user acted
(bot.answer): the response_url of a command or message button, App Home re-rendered (a DM
when Home cannot be, e.g. the store is failing), else a DM (a modal has neither).

Every listener is wrapped by `reported(deps)` (bot.listen does it), which hands its failure
to `handle` itself instead of letting it reach Bolt, which would only log a lazy listener's
failure, and answer 500 for an ack function's. A form's submission check that fails answers
with `response_action: errors` instead, so the modal stays open with what the user typed.
Bolt's own error handler is registered too, for failures outside listeners (middleware).
"""

from __future__ import annotations

import inspect
import logging
import re
import secrets
from collections.abc import Callable
from typing import Any

from slack_bolt import App
from slack_bolt.kwargs_injection import Args
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from leases.errors import AlreadyDecided, DomainError, NotAuthorised

from . import answer, metrics, modals
from .deps import BotDeps

logger = logging.getLogger(__name__)


def correlation_id() -> str:
    """Return a short id to find a failure in the logs from what the user saw."""
    return secrets.token_hex(4)


# A refusal that says "nothing changed" itself (some messages of the domain do) gets it once.
_NOTHING_CHANGED = re.compile(r"[\s;,.]*nothing changed[\s.]*$", re.IGNORECASE)


def _unchanged(message: str) -> str:
    """Return the message as one sentence followed by `Nothing changed.`"""
    return f"{_NOTHING_CHANGED.sub('', message).rstrip(' .;,')}. Nothing changed."


def user_message(error: BaseException, ref: str) -> str:
    """Return what the user is told about a failure."""
    if isinstance(error, AlreadyDecided):
        return f"ℹ️ {_unchanged(error.message)} (ref {ref})"
    if isinstance(error, NotAuthorised):
        return f"⛔ {_unchanged(error.message)} (ref {ref})"
    if isinstance(error, DomainError):
        return f"⚠️ {error.message} (ref {ref})"
    return f"💥 Something went wrong on our side. Quote ref {ref} to the platform team."


def record(error: BaseException, body: dict[str, Any]) -> str:
    """Log a listener's failure and count it; return the correlation id the user is shown."""
    ref = correlation_id()
    kind = type(error).__name__
    metrics.LISTENER_ERRORS.labels(kind).inc()
    fields = {"event": "slack.listener_error", "ref": ref, "error": kind, "user": answer.user_of(body)}
    if isinstance(error, DomainError):
        logger.info("slack.refused ref=%s error=%s: %s", ref, kind, error.message, extra=fields)
    else:
        logger.error("slack.listener_error ref=%s error=%s", ref, kind, exc_info=error, extra=fields)
    return ref


def handle(error: BaseException, body: dict[str, Any], respond: Any, client: WebClient, deps: BotDeps, *,
           modal: dict[str, str] | None = None) -> str:
    """Log a listener's failure, tell the user where they acted (in `modal` when the listener
    opened one); return the correlation id."""
    ref = record(error, body)
    try:
        answer.tell(body, respond, client, deps, user_message(error, ref), modal=modal)
    except (SlackApiError, SlackClientError, DomainError) as exc:
        # The user cannot be told; the log line above (same ref) is the record.
        logger.error("slack.error_not_delivered ref=%s error=%s", ref, exc,
                     extra={"event": "slack.error_not_delivered", "ref": ref})
    return ref


def form_block(view: dict[str, Any] | None, field: str | None) -> str | None:
    """Return the input block of a submitted form an error is shown on: the field's own, else
    the first (None when the view has no input block)."""
    inputs = [b.get("block_id") for b in (view or {}).get("blocks", []) if b.get("type") == "input"]
    if field in inputs:
        return field
    return inputs[0] if inputs else None


def _kept_form_open(error: BaseException, args: Args) -> bool:
    """Answer a failed submission check with the failure on a field of the form; False when
    this is not a form's submission."""
    if args.body.get("type") != "view_submission":
        return False
    block = form_block(args.body.get("view"), getattr(error, "field", None))
    if block is None:
        return False
    args.ack(response_action="errors", errors={block: user_message(error, record(error, args.body))})
    return True


def reported(deps: BotDeps, *, acks: bool = False) -> Callable[[Callable[..., None]], Callable[[Args], None]]:
    """Wrap a listener so any failure goes to `handle`; an ack function (`acks`) that failed
    before acking still answers Slack, so the user is not left waiting for a timeout: a form's
    submission with the failure on one of its fields (the form stays open as typed), anything
    else with an empty ack and the message where the user acted."""

    def decorate(listener: Callable[..., None]) -> Callable[[Args], None]:
        wanted = tuple(inspect.signature(listener).parameters)

        def run(args: Args) -> None:
            try:
                listener(**{name: getattr(args, name) for name in wanted})
            except Exception as error:  # noqa: BLE001 - routed to the one handler, never dropped
                if acks and args.ack is not None and args.ack.response is None:
                    if _kept_form_open(error, args):
                        return
                    args.ack()
                handle(error, args.body, args.respond, args.client, deps,
                       modal=modals.shown(getattr(args, "context", None)))

        # Bolt injects arguments by parameter name: `run` asks for `args` only.
        run.__name__ = run.__qualname__ = listener.__name__
        return run

    return decorate


def register(app: App, deps: BotDeps) -> None:
    """Report failures outside listeners (middleware) the same way."""

    @app.error
    def on_error(error: Exception, body: dict[str, Any], respond: Any, client: WebClient) -> None:
        handle(error, body, respond, client, deps)
