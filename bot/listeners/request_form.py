"""The request form: opened from /gpu-namespace (or App Home) with the trigger, and its
submission checked against the policy before the ack, so refusals come back as field errors.

The form opens in the ack half, before anything slow, within the trigger's 3 s; the work half
then reads which teams the user is in (the directory may have to ask Slack) and shows them in
the form, or puts what went wrong in its place (bot.modals).

The submission check reads the store (team usage, live namespaces) and the directory without
waiting for Slack (bot.directory, `wait=False`), and hands the accepted request to the work
half through the request context; recording it happens after the ack. Its idempotency key is
the modal's id, so a double submit records one request.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from slack_bolt import Ack, App, BoltContext
from slack_sdk import WebClient

from workflows import api

from .. import ids, modals
from ..blocks.forms import request_modal
from ..deps import BotDeps
from ..forms import block_errors, parse_request
from ..listen import listen

ACCEPTED = "gpulease_request"  # context key: the checked request, for the work half


def open_form(deps: BotDeps, context: BoltContext, *, trigger_id: str) -> None:
    """Open the request form now (in an ack function); the teams are shown by `fill_form`."""
    modals.open_now(deps.quick_client, context, trigger_id=trigger_id, view=request_modal(deps.policy, None))


def fill_form(client: WebClient, deps: BotDeps, context: BoltContext, *, user: str, retry: str) -> None:
    """Show in the opened form the teams `user` may request for (after the ack)."""
    modal = modals.opened(context, what="the form", retry=retry)
    teams = deps.teams(deps.actor(user))
    modals.show(client, modal, view=request_modal(deps.policy, teams))


def register(app: App, deps: BotDeps) -> None:
    def check_request(ack: Ack, body: dict[str, Any], view: dict[str, Any], context: BoltContext) -> None:
        form, errors = parse_request(view)
        if form is None:
            ack(response_action="errors", errors=errors)
            return
        user = body["user"]["id"]
        # Slack waits for this answer: the directory answers from its cache, not after a 429's wait.
        actor = deps.actor(user, wait=False)
        request = api.SubmitRequest(
            requester=user,
            team=deps.request_team(actor, chosen=form.team),
            tier=form.tier,
            units=form.units,
            namespace=form.namespace,
            duration=form.duration,
            reason=form.reason,
            requester_groups=actor.groups,
            idempotency_key=f"slack-view:{view['id']}",
        )
        verdict = api.validate(request)
        if not verdict.allowed:
            ack(response_action="errors", errors=block_errors(verdict.errors, view))
            return
        context[ACCEPTED] = request
        ack()

    def record_request(context: BoltContext) -> None:
        request = context.get(ACCEPTED)
        if request is None:
            return  # refused in the modal already
        # The requester hears from the workflow (DM thread) whether it was approved or waits.
        api.submit(dataclasses.replace(request, requester_email=deps.directory.email_of(request.requester)))

    listen(app.view(ids.REQUEST_VIEW), deps, record_request, ack=check_request)
