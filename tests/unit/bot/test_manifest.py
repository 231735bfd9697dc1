"""The Slack app manifest declares exactly what the bot uses: its commands, the one event it
listens to, interactivity, and the scopes of the Web API methods it calls (found in bot/)."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from bot import ids

ROOT = Path(__file__).resolve().parents[3]
MANIFEST = yaml.safe_load((ROOT / "deploy" / "slack-app-manifest.yaml").read_text())
# Web API method (as slack_sdk names it) -> bot scope it needs (None: none).
METHOD_SCOPES = {
    "chat_postMessage": "chat:write",
    "chat_update": "chat:write",
    "conversations_open": "im:write",
    "users_info": "users:read",
    "usergroups_users_list": "usergroups:read",
    "views_open": None,
    "views_update": None,
    "views_publish": None,
}


def methods_called() -> set[str]:
    source = "\n".join(p.read_text() for p in (ROOT / "bot").rglob("*.py"))
    return set(re.findall(r"client\.([a-z][A-Za-z_]+)\(", source))


def test_the_scopes_are_exactly_those_of_the_methods_called():
    called = methods_called()
    assert called <= set(METHOD_SCOPES), f"add the scope of {called - set(METHOD_SCOPES)} to the manifest"
    needed = {METHOD_SCOPES[m] for m in called} - {None}
    needed |= {"commands", "users:read.email"}  # slash commands; the email field of users.info
    assert set(MANIFEST["oauth_config"]["scopes"]["bot"]) == needed


def test_commands_events_and_interactivity_point_at_the_events_endpoint():
    commands = MANIFEST["features"]["slash_commands"]
    assert {c["command"] for c in commands} == {ids.NAMESPACE_COMMAND, ids.ADMIN_COMMAND}
    settings = MANIFEST["settings"]
    assert settings["event_subscriptions"]["bot_events"] == ["app_home_opened"]
    assert settings["interactivity"]["is_enabled"] is True
    urls = {c["url"] for c in commands} | {settings["event_subscriptions"]["request_url"],
                                           settings["interactivity"]["request_url"]}
    assert len(urls) == 1 and urls.pop().endswith("/slack/events")
    assert MANIFEST["features"]["app_home"]["home_tab_enabled"] is True
