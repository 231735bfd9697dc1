"""The Web API methods the sandbox answers, by name.

Part of sandbox.slack; the server looks methods up here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import methods_chat, methods_people, methods_views
from .context import Request

Handler = Callable[[Request], dict[str, Any]]

METHODS: dict[str, Handler] = {
    "auth.test": methods_people.auth_test,
    "chat.getPermalink": methods_chat.chat_get_permalink,
    "chat.postEphemeral": methods_chat.chat_post_ephemeral,
    "chat.postMessage": methods_chat.chat_post_message,
    "chat.update": methods_chat.chat_update,
    "conversations.open": methods_chat.conversations_open,
    "conversations.replies": methods_chat.conversations_replies,
    "usergroups.users.list": methods_people.usergroups_users_list,
    "users.info": methods_people.users_info,
    "users.lookupByEmail": methods_people.users_lookup_by_email,
    "views.open": methods_views.views_open,
    "views.publish": methods_views.views_publish,
    "views.push": methods_views.views_push,
    "views.update": methods_views.views_update,
}
