"""Web API methods about messages: chat.* and conversations.open/replies.

Part of sandbox.slack.
"""

from __future__ import annotations

from typing import Any

from .context import Request
from .errors import ApiError
from .validation import check_message, decode_json_arg, with_block_ids


def _authored(req: Request, content: dict[str, Any]) -> dict[str, Any]:
    bot = req.bot
    return {
        **content,
        "user": bot.user_id,
        "bot_id": bot.bot_id,
        "app_id": bot.app_id,
        "team": req.world.directory.team.id,
        "bot_profile": {"id": bot.bot_id, "app_id": bot.app_id, "name": bot.name, "deleted": False},
    }


def _content(req: Request) -> dict[str, Any]:
    text, blocks = check_message(req.args)
    content: dict[str, Any] = {"text": text}
    if blocks is not None:
        content["blocks"] = with_block_ids(blocks)
    if req.get("attachments"):
        content["attachments"] = decode_json_arg(req.get("attachments"))
    return content


def chat_post_message(req: Request) -> dict[str, Any]:
    """Post a message (a thread reply with thread_ts); a user id as channel means their DM."""
    conversations = req.world.conversations
    channel = conversations.resolve(req.get("channel"))
    message = _authored(req, _content(req))
    if req.get("thread_ts"):
        message["thread_ts"] = str(req.get("thread_ts"))
        if req.flag("reply_broadcast"):
            message["reply_broadcast"] = True
    if req.get("metadata"):
        message["metadata"] = decode_json_arg(req.get("metadata"))
    stored = conversations.post(channel, message)
    return {"channel": channel, "ts": stored["ts"], "message": stored}


def chat_update(req: Request) -> dict[str, Any]:
    """Rewrite a message this bot posted; others' messages get cant_update_message."""
    conversations = req.world.conversations
    channel = conversations.resolve(req.get("channel"))
    ts = str(req.require("ts", "message_not_found"))
    existing = conversations.get(channel, ts)
    if existing is None:
        raise ApiError("message_not_found")
    if existing.get("bot_id") != req.bot.bot_id:
        raise ApiError("cant_update_message")
    changes = _content(req)
    if "text" not in req.args:
        # Slack keeps the old fallback text when only blocks are sent.
        changes.pop("text")
    updated = conversations.update(channel, ts, changes, req.bot.user_id)
    return {"channel": channel, "ts": ts, "text": updated.get("text", ""), "message": updated}


def chat_post_ephemeral(req: Request) -> dict[str, Any]:
    """Show a message to one user in a channel they are in."""
    conversations = req.world.conversations
    channel = conversations.resolve(req.get("channel"))
    user_id = req.require("user", "user_not_found")
    if req.world.directory.user(user_id) is None:
        raise ApiError("user_not_found")
    if not conversations.is_member(channel, user_id):
        raise ApiError("user_not_in_channel")
    message = _authored(req, _content(req))
    if req.get("thread_ts"):
        message["thread_ts"] = str(req.get("thread_ts"))
    stored = conversations.post_ephemeral({**message, "channel": channel, "user": user_id,
                                           "source": "chat.postEphemeral"})
    return {"message_ts": stored["ts"]}


def chat_get_permalink(req: Request) -> dict[str, Any]:
    """Return a link to a stored message."""
    conversations = req.world.conversations
    channel = conversations.resolve(req.get("channel"))
    ts = str(req.require("message_ts", "message_not_found"))
    if conversations.get(channel, ts) is None:
        raise ApiError("message_not_found")
    domain = req.world.directory.team.domain
    return {"channel": channel, "permalink": f"https://{domain}.slack.com/archives/{channel}/p{ts.replace('.', '')}"}


def conversations_open(req: Request) -> dict[str, Any]:
    """Open (or resume) the bot's DM with one user; the D-channel id is stable per user."""
    conversations = req.world.conversations
    users = req.get("users")
    if isinstance(users, str):
        users = [u.strip() for u in users.split(",") if u.strip()]
    if not users:
        if req.get("channel"):
            channel = conversations.resolve(req.get("channel"))
            if conversations.dm_user(channel) is None:
                raise ApiError("channel_not_found")
            return {"channel": {"id": channel}}
        raise ApiError("users_list_not_supplied")
    if len(users) > 1:
        raise ApiError("not_implemented", "[ERROR] the sandbox does not simulate multi-person DMs")
    channel, already_open = conversations.open_dm(users[0])
    body: dict[str, Any] = {"channel": {"id": channel}}
    if req.flag("return_im"):
        body["channel"].update({"created": int(req.world.clock()), "is_im": True, "is_open": True,
                                "user": users[0], "is_org_shared": False})
    if already_open:
        body.update({"no_op": True, "already_open": True})
    return body


def conversations_replies(req: Request) -> dict[str, Any]:
    """Return a thread: its parent first, then the replies."""
    conversations = req.world.conversations
    channel = conversations.resolve(req.get("channel"))
    ts = str(req.require("ts", "thread_not_found"))
    parent = conversations.get(channel, ts)
    if parent is None:
        raise ApiError("thread_not_found")
    messages = [parent, *conversations.messages(channel, thread_ts=ts)]
    return {"messages": messages, "has_more": False, "response_metadata": {"next_cursor": ""}}
