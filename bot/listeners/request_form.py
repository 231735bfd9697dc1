"""The request form: opened from /gpu-namespace (or App Home) with the trigger, and its
submission checked against the policy before the ack, so refusals come back as field errors.

The check reads the store only (team usage, live namespaces) and hands the accepted request
to the work half through the request context; recording it happens after the ack. Its
idempotency key is the modal's id, so a double submit records one request.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from slack_bolt import Ack, App, BoltContext
from slack_sdk import WebClient

from leases.errors import DomainError
from workflows import api

from .. import ids
from ..blocks.forms import request_modal
from ..deps import BotDeps
from ..forms import block_errors, parse_request
from ..listen import listen

ACCEPTED = "gpulease_request"  # context key: the checked request, for the work half


def open_form(client: WebClient, deps: BotDeps, *, trigger_id: str, user: str) -> None:
    """Open the request form for `user` (after the caller acked, within the trigger's 3 s)."""
    teams = deps.teams(deps.actor(user))
    if not teams:
        raise DomainError("you are not in any team of the GPU policy; ask a platform admin to add you")
    client.views_open(trigger_id=trigger_id, view=request_modal(deps.policy, teams))


def register(app: App, deps: BotDeps) -> None:
    def check_request(ack: Ack, body: dict[str, Any], view: dict[str, Any], context: BoltContext) -> None:
        form, errors = parse_request(view)
        if form is None:
            ack(response_action="errors", errors=errors)
            return
        user = body["user"]["id"]
        request = api.SubmitRequest(
            requester=user,
            team=form.team,
            tier=form.tier,
            units=form.units,
            namespace=form.namespace,
            duration=form.duration,
            reason=form.reason,
            # Teams may be Slack user groups: cached, so Slack is asked only on a miss.
            requester_groups=deps.actor(user).groups,
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
