"""Web API methods about identities: auth.test, users.*, usergroups.users.list.

Part of sandbox.slack.
"""

from __future__ import annotations

from typing import Any

from .context import Request
from .errors import ApiError


def auth_test(req: Request) -> dict[str, Any]:
    """Describe the token's bot (Bolt calls this at start and keeps bot_id/user_id/team_id)."""
    team = req.world.directory.team
    return {
        "url": f"https://{team.domain}.slack.com/",
        "team": team.name,
        "user": req.bot.name,
        "team_id": team.id,
        "user_id": req.bot.user_id,
        "bot_id": req.bot.bot_id,
        "is_enterprise_install": False,
    }


def users_info(req: Request) -> dict[str, Any]:
    """Return one user; unknown ids get user_not_found."""
    user = req.world.directory.user(req.require("user", "user_not_found"))
    if user is None:
        raise ApiError("user_not_found")
    return {"user": user.to_slack(req.world.directory.team.id)}


def users_lookup_by_email(req: Request) -> dict[str, Any]:
    """Return the user with an email; unknown emails get users_not_found (note the plural)."""
    user = req.world.directory.user_by_email(req.require("email", "users_not_found"))
    if user is None:
        raise ApiError("users_not_found")
    return {"user": user.to_slack(req.world.directory.team.id)}


def usergroups_users_list(req: Request) -> dict[str, Any]:
    """Return a user group's member ids; missing or unknown groups get no_such_subteam."""
    group = req.world.directory.usergroup(req.require("usergroup", "no_such_subteam"))
    if group is None:
        raise ApiError("no_such_subteam")
    return {"users": list(group.users)}
