"""Approval cards: Approve, Deny (asks for a reason in a modal), and the same for extensions.

workflows.api.decide checks that the clicker is an approver for the tier and not the
requester, and refuses a second decision naming who decided; those refusals reach the
clicker through bot.errors and the card stays as it is. The card is rewritten by the
workflow's outbox, so two replicas never race to edit it.

Deny opens its reason modal before the ack, while the trigger is fresh (bot.modals); the
work half then reads the lease and checks the clicker, and names the request in the modal or
puts the refusal in its place.
"""

from __future__ import annotations

from typing import Any

from slack_bolt import Ack, App, BoltContext, Respond
from slack_sdk import WebClient

from leases.errors import AlreadyDecided, DomainError
from workflows import api

from .. import buttons, ids, modals
from ..blocks import cards
from ..blocks.forms import deny_modal
from ..deps import Actor, BotDeps
from ..forms import deny_reason
from ..listen import listen
from .commands import extended_text

RUNNING = ("active", "expiring")
DENIAL = "gpulease_denial"  # context key: (lease id, reason) from a complete Deny modal


def _clicked(body: dict[str, Any]) -> buttons.LeaseButton:
    return buttons.decode(body["actions"][0].get("value"))


def _extension_still_open(lease: dict[str, Any], ref: buttons.LeaseButton) -> None:
    if ref.by is None or ref.extensions is None:
        raise DomainError("this button is out of date; use /gpu-namespace list")
    namespace, state = lease.get("namespace"), lease.get("state")
    if state not in RUNNING:
        # Nobody answered it: the lease ended (or is ending) under it.
        ending = "is being reclaimed" if state == "reclaiming" else f"has ended (it is {state})"
        raise AlreadyDecided(f"`{namespace}` {ending}, so there is nothing left to extend")
    # The card was rendered at extension count `ref.extensions`; any extension since then
    # (this one granted by another click, or the requester's own) answers it.
    if int(lease.get("extensions") or 0) != ref.extensions:
        raise AlreadyDecided(
            f"this extension request for {namespace} was answered already "
            f"(the lease is {state}, extended {lease.get('extensions')} time(s))."
        )


def _approver(deps: BotDeps, user: str, *, lease_id: str, lease: dict[str, Any] | None = None) -> Actor:
    """Return the clicker with their groups. When Slack did not say who is in some of them,
    check here: workflows.api decides on the groups known and would refuse as if the clicker
    were in none, where the truth is that Slack did not answer."""
    actor = deps.actor(user)
    if actor.unknown:
        lease = lease or api.lease_details(lease_id)
        deps.require_approver(actor, tier=lease["tier"], requester=lease["requester"])
    return actor


def register(app: App, deps: BotDeps) -> None:
    def approve(body: dict[str, Any]) -> None:
        ref = _clicked(body)
        actor = _approver(deps, body["user"]["id"], lease_id=ref.lease_id)
        api.decide(lease_id=ref.lease_id, approver=actor.user, approver_groups=actor.groups, approve=True)

    def open_deny(ack: Ack, body: dict[str, Any], context: BoltContext) -> None:
        ack()
        try:
            ref = _clicked(body)
        except DomainError:
            return  # a button that is not ours: the work half says so
        modals.open_now(deps.quick_client, context, trigger_id=body["trigger_id"],
                        view=deny_modal(lease_id=ref.lease_id))

    def deny(body: dict[str, Any], client: WebClient, context: BoltContext) -> None:
        ref = _clicked(body)
        modal = modals.opened(context, what="the Deny form", retry="click Deny")
        api.require_undecided(lease_id=ref.lease_id)  # in the words Approve would use
        lease = api.lease_details(ref.lease_id)
        # Checked here too so a non-approver is told at once instead of after typing a reason.
        deps.require_approver(deps.actor(body["user"]["id"]), tier=lease["tier"], requester=lease["requester"])
        modals.show(client, modal, view=deny_modal(
            lease_id=ref.lease_id, namespace=lease["namespace"], requester=lease["requester"]))

    def check_denial(ack: Ack, view: dict[str, Any], context: BoltContext) -> None:
        lease_id, reason = deny_reason(view)
        if not reason:
            ack(response_action="errors", errors={ids.REASON: "say why; the requester reads it"})
            return
        context[DENIAL] = (lease_id, reason)
        ack()

    def record_denial(body: dict[str, Any], context: BoltContext) -> None:
        if context.get(DENIAL) is None:
            return  # no reason given: the modal said so
        lease_id, reason = context[DENIAL]
        actor = _approver(deps, body["user"]["id"], lease_id=lease_id)
        api.decide(lease_id=lease_id, approver=actor.user, approver_groups=actor.groups, approve=False,
                   reason=reason)

    def approve_extension(body: dict[str, Any], respond: Respond) -> None:
        ref = _clicked(body)
        lease = api.lease_details(ref.lease_id)
        _extension_still_open(lease, ref)
        actor = _approver(deps, body["user"]["id"], lease_id=ref.lease_id, lease=lease)
        result = api.decide_extension(lease_id=ref.lease_id, approver=actor.user, approver_groups=actor.groups,
                                      by=ref.by, expected_extensions=ref.extensions, request_id=ref.request)
        line = f"✅ *Extension allowed* by <@{actor.user}>. {extended_text(lease['namespace'], result)}"
        respond(replace_original=True, **cards.extension_decided(body["message"]["blocks"], line))

    def deny_extension(body: dict[str, Any], respond: Respond, client: WebClient) -> None:
        ref = _clicked(body)
        lease = api.lease_details(ref.lease_id)
        _extension_still_open(lease, ref)
        actor = _approver(deps, body["user"]["id"], lease_id=ref.lease_id, lease=lease)
        api.deny_extension(lease_id=ref.lease_id, approver=actor.user, approver_groups=actor.groups, by=ref.by,
                           expected_extensions=ref.extensions, request_id=ref.request)
        line = f"❌ *Extension denied* by <@{actor.user}>."
        respond(replace_original=True, **cards.extension_decided(body["message"]["blocks"], line))

    listen(app.action(ids.APPROVE), deps, approve)
    listen(app.action(ids.DENY), deps, deny, ack=open_deny)
    listen(app.view(ids.DENY_VIEW), deps, record_denial, ack=check_denial)
    listen(app.action(ids.APPROVE_EXTENSION), deps, approve_extension)
    listen(app.action(ids.DENY_EXTENSION), deps, deny_extension)
