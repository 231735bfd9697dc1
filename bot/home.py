"""Publishing a user's App Home tab: their live leases, rendered by bot.blocks.home.

Used by the Home listener, by buttons clicked on Home (to show the outcome there) and by the
error handler.
"""

from __future__ import annotations

from slack_sdk import WebClient

from workflows import api

from .blocks.home import RUNNING, home_view
from .deps import BotDeps


def publish(client: WebClient, deps: BotDeps, user: str, *, notice: str | None = None) -> None:
    """Render and publish a user's Home tab (with `notice` on top, e.g. what their click did)."""
    leases = api.leases_of(user)
    extensions = {
        lease.id: int(api.lease_details(lease.id).get("extensions") or 0)
        for lease in leases if lease.state in RUNNING
    }
    view = home_view(leases, extensions=extensions, notice=notice, step=deps.step_text)
    client.views_publish(user_id=user, view=view)
