"""Buttons on a requester's messages and App Home: Extend, Release, Cancel, Take another tier,
It's in use.

Each click is checked against the lease as it is now, so a second click on the same button
changes nothing and says so: Extend carries the extension count it was rendered with,
Release and Cancel look at the state. workflows.api re-checks who may act.
"""

from __future__ import annotations

import re
from typing import Any

from slack_bolt import App, Respond
from slack_sdk import WebClient

from leases.errors import AlreadyDecided
from workflows import api

from .. import buttons, ids
from ..answer import tell
from ..blocks import replies
from ..blocks.kit import when
from ..deps import BotDeps
from ..listen import listen
from .commands import extended_text

GONE = ("reclaiming", "reclaimed", "cancelled", "denied", "failed", "expired_unapproved")


def _clicked(body: dict[str, Any]) -> tuple[buttons.LeaseButton, dict[str, Any]]:
    ref = buttons.decode(body["actions"][0].get("value"))
    return ref, api.lease_details(ref.lease_id)


def register(app: App, deps: BotDeps) -> None:
    def extend(body: dict[str, Any], respond: Respond, client: WebClient) -> None:
        ref, lease = _clicked(body)
        if ref.extensions is not None and int(lease.get("extensions") or 0) != ref.extensions:
            raise AlreadyDecided(
                f"`{lease['namespace']}` was extended since this message (it runs until "
                f"{when(lease.get('expires_at'))}). Use `/gpu-namespace extend {lease['namespace']} 1d` for more."
            )
        # Checked again under the lease's lock: a double click, or the same button in the DM
        # and on Home, extends once.
        result = api.extend(
            lease_id=ref.lease_id, actor=body["user"]["id"], by=deps.extend_step, expected_extensions=ref.extensions
        )
        tell(body, respond, client, deps, extended_text(lease["namespace"], result))

    def release(body: dict[str, Any], respond: Respond, client: WebClient) -> None:
        ref, lease = _clicked(body)
        if lease["state"] in GONE:
            raise AlreadyDecided(f"`{lease['namespace']}` is {lease['state']} already.")
        actor = deps.actor(body["user"]["id"])
        state = api.release(lease_id=ref.lease_id, actor=actor.user, actor_groups=actor.groups)
        tell(body, respond, client, deps, replies.ending(lease["namespace"], state))

    def cancel(body: dict[str, Any], respond: Respond, client: WebClient) -> None:
        ref, lease = _clicked(body)
        if lease["state"] in GONE:
            raise AlreadyDecided(f"`{lease['namespace']}` is {lease['state']} already.")
        actor = deps.actor(body["user"]["id"])
        api.cancel(lease_id=ref.lease_id, actor=actor.user, actor_groups=actor.groups)
        tell(body, respond, client, deps, f"↩️ `{lease['namespace']}` is withdrawn.")

    def accept_fallback(body: dict[str, Any], respond: Respond, client: WebClient) -> None:
        ref, lease = _clicked(body)
        if ref.tier is None:
            raise AlreadyDecided("this button is out of date; use /gpu-namespace list")
        if lease["tier"] == ref.tier:
            raise AlreadyDecided(f"`{lease['namespace']}` is on {ref.tier} already.")
        api.accept_fallback(lease_id=ref.lease_id, tier=ref.tier, actor=body["user"]["id"])
        tell(body, respond, client, deps, f"🔀 `{lease['namespace']}` moves to {ref.tier}; placing it now.")

    def mark_busy(body: dict[str, Any], respond: Respond, client: WebClient) -> None:
        ref, lease = _clicked(body)
        api.mark_busy(lease_id=ref.lease_id, actor=body["user"]["id"])
        tell(body, respond, client, deps, f"👍 Noted: `{lease['namespace']}` is in use; it will not be reclaimed as idle for now.")

    listen(app.action(ids.EXTEND), deps, extend)
    listen(app.action(ids.RELEASE), deps, release)
    listen(app.action(ids.CANCEL), deps, cancel)
    listen(app.action(re.compile(re.escape(ids.ACCEPT_FALLBACK) + r":\d+")), deps, accept_fallback)
    listen(app.action(ids.MARK_BUSY), deps, mark_busy)
