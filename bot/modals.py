"""Modals opened within the trigger's 3 s: the ack half opens, the work half completes.

A trigger_id lives 3 s and the work half of a listener (bot.listen) may wait that long for a
pool thread, so a listener that opens a modal does it in its ack function, before anything
slow (the directory, the store), through the quick client; the work half then fills it in
with views.update, or replaces it with what went wrong (bot.answer). What the ack half
opened, or why it could not, reaches the work half through the request context:

    def ack_half(ack, body, context):
        ack()
        modals.open_now(deps.quick_client, context, trigger_id=body["trigger_id"], view=...)

    def work_half(client, context):
        modal = modals.opened(context, what="the form", retry="run /gpu-namespace")
        modals.show(client, modal, view=...)

Imported by bot listeners, bot.answer and bot.errors.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from slack_bolt import BoltContext
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from leases.errors import DomainError

from .blocks.forms import notice_modal

logger = logging.getLogger(__name__)

OPENED = "gpulease_modal"  # context key: {"id", "title"} of the modal the ack half opened
NOT_OPENED = "gpulease_modal_error"  # context key: why views.open failed (Slack's error name)
# views.open came too late for the trigger: Slack's names for it, and ours for giving up waiting.
TOO_LATE = frozenset({"expired_trigger_id", "exchanged_trigger_id", "trigger_expired", "trigger_exchanged",
                      "timeout"})
CLOSED = frozenset({"not_found"})  # views.update on a modal the user closed meanwhile


def open_now(client: WebClient, context: BoltContext, *, trigger_id: str, view: dict[str, Any]) -> None:
    """Open `view` with the trigger, and note in the context the modal or why it did not open."""
    started = time.monotonic()
    try:
        opened = client.views_open(trigger_id=trigger_id, view=view)["view"]
    except SlackApiError as exc:
        error = str(exc.response.get("error"))
    except (SlackClientError, OSError) as exc:  # OSError: the quick client's timeout, a refused connection
        error = "timeout" if isinstance(exc, TimeoutError) or "timed out" in str(exc) else type(exc).__name__
    else:
        context[OPENED] = {"id": opened["id"], "title": view["title"]["text"]}
        return
    context[NOT_OPENED] = error
    logger.warning("slack.modal_not_opened callback_id=%s error=%s after %.2fs", view.get("callback_id"), error,
                   time.monotonic() - started,
                   extra={"event": "slack.modal_not_opened", "callback_id": view.get("callback_id"), "error": error})


def shown(context: BoltContext | None) -> dict[str, str] | None:
    """Return the modal the ack half opened for this request, if it did."""
    return (context or {}).get(OPENED)


def opened(context: BoltContext, *, what: str, retry: str) -> dict[str, str]:
    """Return the modal the ack half opened; raise what to tell the user when it could not."""
    modal = shown(context)
    if modal is not None:
        return modal
    error = context.get(NOT_OPENED)
    if error in TOO_LATE:
        raise DomainError(f"Slack took too long to open {what}; please {retry} again.")
    raise RuntimeError(f"views.open failed for {what}: {error}")  # logged with the reference


def show(client: WebClient, modal: dict[str, str], *, view: dict[str, Any]) -> bool:
    """Replace what the modal shows; False when the user closed it meanwhile."""
    try:
        client.views_update(view_id=modal["id"], view=view)
    except SlackApiError as exc:
        if exc.response.get("error") not in CLOSED:
            raise
        logger.info("slack.modal_closed view_id=%s: closed before it was filled in", modal["id"],
                    extra={"event": "slack.modal_closed", "view_id": modal["id"]})
        return False
    return True


def show_notice(client: WebClient, modal: dict[str, str], text: str) -> bool:
    """Put `text` where the modal's form was; False when that cannot be done."""
    try:
        return show(client, modal, view=notice_modal(title=modal["title"], text=text))
    except SlackApiError:
        return False  # the caller tells the user another way
