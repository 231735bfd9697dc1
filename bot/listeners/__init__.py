"""Listeners, one module per feature, each with `register(app, deps)`.

Every listener acks first, then parses into a typed model, calls workflows.api and renders
with bot.blocks. Failures propagate to bot.errors.
"""

from __future__ import annotations

from slack_bolt import App

from ..deps import BotDeps
from . import admin, approvals, commands, home, lease_actions, request_form

FEATURES = (commands, request_form, approvals, lease_actions, home, admin)


def register_all(app: App, deps: BotDeps) -> None:
    """Register every feature's listeners on the app."""
    for feature in FEATURES:
        feature.register(app, deps)
