"""/gpu-admin capacity | leases | revoke NS [reason] | reclaim NS at TIME | drain NODE.

Admins only: refused here before anything is read, and again by every admin function of
workflows.api, which is the authority.
"""

from __future__ import annotations

from typing import Any

from slack_bolt import App, Respond

from leases.errors import NotAuthorised
from workflows import api

from .. import ids, parsing
from ..blocks import replies
from ..blocks.kit import when
from ..deps import BotDeps
from ..listen import listen


def register(app: App, deps: BotDeps) -> None:
    def admin_command(command: dict[str, Any], respond: Respond) -> None:
        actor = deps.actor(command["user_id"])
        if not api.is_admin(actor.user, actor.groups):
            deps.require_readable(actor, groups=deps.policy.admins.usergroups,
                                  purpose="whether you are a gpulease admin")
            raise NotAuthorised("/gpu-admin is for gpulease admins only", field="actor")
        who = {"actor": actor.user, "actor_groups": actor.groups}
        # `+6h` counts from the workflows' clock, which the reclaim time is checked and swept by
        # (`gpulease dev` moves it ahead of the wall clock).
        match parsing.admin_command(command.get("text") or "", now=api.now()):
            case parsing.Capacity():
                respond(**replies.capacity(api.capacity()))
            case parsing.AllLeases():
                respond(**replies.lease_list(api.leases(live=True), title="Live leases", owner=True,
                                             empty="No live leases."))
            case parsing.Revoke(namespace, reason):
                state = api.revoke(namespace=namespace, reason=reason, **who)
                respond(**replies.text(replies.ending(namespace, state, revoked=True)))
            case parsing.Reclaim(namespace, at):
                api.schedule_reclaim(namespace=namespace, at=at, **who)
                respond(**replies.text(f"📅 `{namespace}` will be reclaimed at {when(at)}; its owner was told."))
            case parsing.Drain(node):
                api.drain(node=node, **who)
                respond(**replies.text(f"🚧 Draining `{node}`: cordoning it, so it takes no new leases. If "
                                       "that fails, the gpulease admins are told why."))
            case parsing.Help(problem):
                respond(**replies.usage(replies.ADMIN_USAGE, problem))

    listen(app.command(ids.ADMIN_COMMAND), deps, admin_command)
