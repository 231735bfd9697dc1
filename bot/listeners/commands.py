"""/gpu-namespace: open the request form, or list | status NS | extend NS 3d | release NS | help.

Acked at once (empty); the answer goes through the command's response_url, visible only to
the person who typed it. The request form is opened before the ack (bot.modals), so the
trigger is used while it is fresh.
"""

from __future__ import annotations

from typing import Any

from slack_bolt import Ack, App, BoltContext, Respond
from slack_sdk import WebClient

from workflows import api

from .. import ids, parsing
from ..blocks import replies
from ..blocks.kit import when
from ..deps import BotDeps
from ..listen import listen
from .request_form import fill_form, open_form


def extended_text(namespace: str, result: Any) -> str:
    """Say what an extension did (done, or sent to an approver)."""
    if result.outcome == "extended":
        return f"➕ `{namespace}` now runs until {when(result.expires_at)}."
    return f"⏳ {result.message}. I asked the approvers; you will hear from me."


def register(app: App, deps: BotDeps) -> None:
    def answer_command(ack: Ack, command: dict[str, Any], context: BoltContext) -> None:
        ack()
        if isinstance(parsing.namespace_command(command.get("text") or ""), parsing.OpenForm):
            open_form(deps, context, trigger_id=command["trigger_id"])

    def namespace_command(command: dict[str, Any], respond: Respond, client: WebClient, context: BoltContext) -> None:
        user = command["user_id"]
        match parsing.namespace_command(command.get("text") or ""):
            case parsing.OpenForm():
                fill_form(client, deps, context, user=user, retry=f"run {ids.NAMESPACE_COMMAND}")
            case parsing.ListLeases():
                respond(**replies.lease_list(api.leases_of(user), title="Your leases"))
            case parsing.Status(namespace):
                respond(**replies.lease_status(api.lease_by_namespace(namespace)))
            case parsing.Extend(namespace, by):
                result = api.extend(namespace=namespace, actor=user, by=by)
                respond(**replies.text(extended_text(namespace, result)))
            case parsing.Release(namespace):
                actor = deps.actor(user)
                state = api.release(namespace=namespace, actor=user, actor_groups=actor.groups)
                respond(**replies.text(replies.ending(namespace, state)))
            case parsing.Help(problem):
                respond(**replies.usage(replies.NAMESPACE_USAGE, problem))

    listen(app.command(ids.NAMESPACE_COMMAND), deps, namespace_command, ack=answer_command)
