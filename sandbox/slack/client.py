"""SignedClient: sends the bot's HTTP endpoint what Slack would, signed as Slack signs it.

    to_bot = SignedClient("http://127.0.0.1:3000/slack/events", signing_secret, slack.url)
    to_bot.slash_command("/gpu-namespace", "list", user_id="U0ALICE")
    card = slack.messages("C0APPROVALS")[-1]
    to_bot.block_action("approve", user_id="U0APPROVER1", channel="C0APPROVALS", message=card)
    to_bot.view_submission(slack.views("U0ALICE")[-1], {"ns": {"name": "alice-exp"}}, user_id="U0ALICE")

Every trigger_id it sends is registered with the sandbox (good for 3 s) and every
response_url points at the sandbox's /webhook/, both through the admin endpoints, so the
sandbox may run in another process. Like Slack it also reports the app's answers back: a
slash command's immediate reply is shown to the user, and a view_submission's
response_action closes, updates or keeps the modal. `bad_signature=True` and `stale=True`
(a timestamp 6 minutes old) build requests the app must refuse. Part of sandbox.slack.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

from . import payloads
from .directory import dm_channel_id
from .remote import RemoteSandbox
from .signing import signed_headers

STALE_AGE_S = 6 * 60  # Slack apps refuse requests more than 5 minutes old.
USER_AGENT = "Slackbot 1.0 (+https://api.slack.com/robots)"


@dataclass(frozen=True)
class SignedResponse:
    """What the app answered, and how long it took."""

    status: int
    headers: dict[str, str]
    body: bytes
    elapsed: float

    @property
    def text(self) -> str:
        """Return the body as text."""
        return self.body.decode(errors="replace")

    def json(self) -> Any:
        """Return the body parsed as JSON (None when empty)."""
        return json.loads(self.body) if self.body.strip() else None


class SignedClient:
    """Sends signed slash commands, interactivity payloads and events to one app endpoint."""

    def __init__(self, endpoint: str, signing_secret: str, sandbox_url: str, *,
                 clock: Callable[[], float] = time.time, timeout: float = 10.0) -> None:
        self.endpoint = endpoint
        self.signing_secret = signing_secret
        self.sandbox = RemoteSandbox(sandbox_url)
        # The app checks timestamps against its own clock, so this is the wall clock, not the sandbox's.
        self._clock = clock
        self._timeout = timeout
        self._directory: dict[str, Any] | None = None

    # -- raw sending -------------------------------------------------------------------------

    def send(self, body: bytes | str, content_type: str, *, bad_signature: bool = False, stale: bool = False,
             timestamp: int | None = None, headers: dict[str, str] | None = None) -> SignedResponse:
        """Sign and POST a raw body; return the app's answer (any HTTP status)."""
        raw = body.encode() if isinstance(body, str) else body
        if timestamp is None:
            timestamp = int(self._clock()) - (STALE_AGE_S if stale else 0)
        secret = self.signing_secret + ("-wrong" if bad_signature else "")
        request = urllib.request.Request(self.endpoint, data=raw, method="POST", headers={
            **signed_headers(secret, raw, content_type=content_type, timestamp=timestamp),
            "User-Agent": USER_AGENT,
            **(headers or {}),
        })
        started = time.perf_counter()
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as response:
                status, reply_headers, reply = response.status, dict(response.headers.items()), response.read()
        except urllib.error.HTTPError as error:
            status, reply_headers, reply = error.code, dict(error.headers.items()), error.read()
        return SignedResponse(status, {k.lower(): v for k, v in reply_headers.items()}, reply,
                              time.perf_counter() - started)

    def send_form(self, fields: dict[str, str], **options: Any) -> SignedResponse:
        """Send form fields, as Slack sends slash commands."""
        return self.send(urlencode(fields), "application/x-www-form-urlencoded", **options)

    def send_interactivity(self, payload: dict[str, Any], **options: Any) -> SignedResponse:
        """Send `payload=<url-quoted JSON>`, as Slack sends interactivity payloads."""
        body = "payload=" + quote(json.dumps(payload, separators=(",", ":")), safe="")
        return self.send(body, "application/x-www-form-urlencoded", **options)

    def send_event(self, envelope: dict[str, Any], *, retry_num: int | None = None,
                   retry_reason: str = "http_timeout", **options: Any) -> SignedResponse:
        """Send an Events API envelope as JSON (retry_num: mark it as Slack's nth redelivery)."""
        headers = {"X-Slack-Retry-Num": str(retry_num), "X-Slack-Retry-Reason": retry_reason} if retry_num else {}
        return self.send(json.dumps(envelope), "application/json", headers=headers, **options)

    # -- what users do -----------------------------------------------------------------------

    def slash_command(self, command: str, text: str = "", *, user_id: str, channel_id: str = "C0GENERAL",
                      **options: Any) -> SignedResponse:
        """Type `command text` in a channel; the immediate reply is shown to the user as Slack would."""
        response_url = self.sandbox.issue_response_url(channel=channel_id, user_id=user_id)
        fields = payloads.slash_command(
            self._actor(user_id), command=command, text=text, channel_id=channel_id,
            channel_name=self._channel_name(channel_id), response_url=response_url,
            trigger_id=self.sandbox.issue_trigger(user_id),
        )
        response = self.send_form(fields, **options)
        if response.status == 200 and response.body.strip():
            self._show_immediate_reply(response_url, response)
        return response

    def block_action(self, action_id: str, *, user_id: str, channel: str | None = None,
                     message: dict[str, Any] | None = None, view: dict[str, Any] | None = None,
                     value: str | None = None, selected: str | None = None, block_id: str | None = None,
                     **options: Any) -> SignedResponse:
        """Click a button (or choose in a select) in a message (channel + message) or a view."""
        source = view if view is not None else message
        if source is None:
            raise ValueError("block_action needs the message (with channel) or the view the element is in")
        found = payloads.find_element(source.get("blocks", []), action_id)
        if found is None and block_id is None:
            raise ValueError(f"no element with action_id {action_id!r} in the given message or view")
        element_block_id, element = found or (block_id, {"type": "button"})
        entry = payloads.action(element, block_id=block_id or element_block_id, action_id=action_id,
                                value=value, selected=selected)
        trigger_id = self.sandbox.issue_trigger(user_id)
        actor = self._actor(user_id)
        if view is not None:
            payload = payloads.block_actions(actor, actions=[entry], trigger_id=trigger_id, view=view)
        else:
            if channel is None or message is None:
                raise ValueError("a message action needs channel and message")
            response_url = self.sandbox.issue_response_url(channel=channel, user_id=user_id,
                                                           message_ts=message["ts"])
            payload = payloads.block_actions(
                actor, actions=[entry], trigger_id=trigger_id, response_url=response_url,
                channel={"id": channel, "name": self._channel_name(channel)}, message=message,
            )
        return self.send_interactivity(payload, **options)

    def view_submission(self, view: dict[str, Any], values: dict[str, dict[str, Any]] | None = None, *,
                        user_id: str, **options: Any) -> SignedResponse:
        """Submit a modal with the user's input; the app's response_action is applied in the sandbox."""
        payload = payloads.view_submission(self._actor(user_id), view=view, values=values or {},
                                           trigger_id=self.sandbox.issue_trigger(user_id))
        response = self.send_interactivity(payload, **options)
        if response.status == 200:
            try:
                answer = response.json()
            except ValueError:
                answer = None
            self.sandbox.answer_view_submission(view["id"], answer if isinstance(answer, dict) else None)
        return response

    def view_closed(self, view: dict[str, Any], *, user_id: str, **options: Any) -> SignedResponse:
        """Close a modal with Cancel; Slack tells the app only when the view has notify_on_close."""
        self.sandbox.close_view(view["id"])
        return self.send_interactivity(payloads.view_closed(self._actor(user_id), view=view), **options)

    def app_home_opened(self, user_id: str, *, tab: str = "home", **options: Any) -> SignedResponse:
        """Open the app's Home tab (the event carries the home view published so far, if any)."""
        envelope = payloads.app_home_opened(
            self._actor(user_id), channel=dm_channel_id(user_id), bot_user_id=self._bot_user_id(),
            tab=tab, view=self.sandbox.home(user_id),
        )
        return self.send_event(envelope, **options)

    def event(self, event: dict[str, Any], *, user_id: str, **options: Any) -> SignedResponse:
        """Deliver any Events API event (e.g. a message) in its envelope."""
        envelope = payloads.event_callback(self._actor(user_id), event, bot_user_id=self._bot_user_id())
        return self.send_event(envelope, **options)

    def url_verification(self, challenge: str = "sandbox-challenge", **options: Any) -> SignedResponse:
        """Send the handshake Slack sends when the Request URL is configured."""
        envelope = {"token": "sandbox-verification-token", "challenge": challenge, "type": "url_verification"}
        return self.send_event(envelope, **options)

    # -- helpers -----------------------------------------------------------------------------

    def _show_immediate_reply(self, response_url: str, response: SignedResponse) -> None:
        try:
            reply = response.json()
        except ValueError:
            reply = {"text": response.text}  # ack("text") answers plain text
        if isinstance(reply, dict) and (reply.get("text") or reply.get("blocks")):
            request = urllib.request.Request(response_url + "?immediate=1", data=json.dumps(reply).encode(),
                                             method="POST", headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=self._timeout):
                pass

    def _known(self) -> dict[str, Any]:
        if self._directory is None:
            self._directory = self.sandbox.directory()
        return self._directory

    def _actor(self, user_id: str) -> payloads.Actor:
        directory = self._known()
        user = next((u for u in directory["users"] if u["id"] == user_id), None)
        team = directory["team"]
        return payloads.Actor(user_id, user["name"] if user else user_id.lower(), team["id"], team["domain"],
                              directory["bot"]["app_id"])

    def _channel_name(self, channel_id: str) -> str:
        if channel_id.startswith("D"):
            return "directmessage"
        channels = self._known()["channels"]
        return next((c["name"] for c in channels if c["id"] == channel_id), channel_id.lower())

    def _bot_user_id(self) -> str:
        return self._known()["bot"]["user_id"]
