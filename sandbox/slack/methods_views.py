"""Web API methods about surfaces: views.open, views.push, views.update, views.publish.

Part of sandbox.slack.
"""

from __future__ import annotations

from typing import Any

from .context import Request
from .errors import ApiError
from .validation import check_view


def _trigger(req: Request) -> str:
    # interactivity_pointer is the newer name for the same one-use token.
    return req.world.surfaces.exchange_trigger(req.get("trigger_id") or req.get("interactivity_pointer"))


def _modal(req: Request) -> dict[str, Any]:
    view = check_view(req.get("view"))
    if view["type"] != "modal":
        raise ApiError("invalid_arguments", "[ERROR] must be modal [json-pointer:/view/type]")
    return view


def views_open(req: Request) -> dict[str, Any]:
    """Open a modal for the user the trigger id was issued to."""
    view = _modal(req)
    user_id = _trigger(req)
    return {"view": req.world.surfaces.open(user_id, view, req.bot)}


def views_push(req: Request) -> dict[str, Any]:
    """Push a modal on top of the trigger user's open modal."""
    view = _modal(req)
    user_id = _trigger(req)
    return {"view": req.world.surfaces.push(user_id, view, req.bot)}


def views_update(req: Request) -> dict[str, Any]:
    """Replace an open view's content by view_id or external_id, honouring hash."""
    view = check_view(req.get("view"))
    updated = req.world.surfaces.update(
        view, view_id=req.get("view_id") or None, external_id=req.get("external_id") or None,
        hash=req.get("hash") or None,
    )
    return {"view": updated}


def views_publish(req: Request) -> dict[str, Any]:
    """Publish a user's App Home tab."""
    user_id = req.require("user_id")
    view = check_view(req.get("view"))
    if view["type"] != "home":
        raise ApiError("invalid_arguments", "[ERROR] must be home [json-pointer:/view/type]")
    if req.world.directory.user(user_id) is None:
        raise ApiError("invalid_arguments", "invalid `user_id`")
    return {"view": req.world.surfaces.publish(user_id, view, req.bot, req.get("hash") or None)}
