"""A local stand-in for the Slack Web API, and a client that signs requests as Slack does.

    from sandbox.slack import SlackSandbox, SignedClient, DEFAULT_TOKEN, DEFAULT_SIGNING_SECRET

    with SlackSandbox(port=0) as slack:                      # Web API at slack.url (.../api/)
        bolt_client = WebClient(token=DEFAULT_TOKEN, base_url=slack.url)
        to_bot = SignedClient("http://127.0.0.1:3000/slack/events", DEFAULT_SIGNING_SECRET, slack.url)
        to_bot.slash_command("/gpu-namespace", user_id="U0ALICE")
        slack.wait_for_calls("views.open")

`python -m sandbox.slack --port P` serves it on its own. Imports nothing of the product
(it stands for Slack); tests, the demo and the composition root may import it.
"""

from .calls import Call
from .client import SignedClient, SignedResponse
from .clock import ManualClock
from .directory import Channel, Directory, Team, User, UserGroup, dm_channel_id
from .faults import Fault
from .remote import RemoteSandbox
from .server import DEFAULT_SIGNING_SECRET, DEFAULT_TOKEN, SlackSandbox
from .signing import sign, signed_headers
from .state import Bot

__all__ = [
    "DEFAULT_SIGNING_SECRET",
    "DEFAULT_TOKEN",
    "Bot",
    "Call",
    "Channel",
    "Directory",
    "Fault",
    "ManualClock",
    "RemoteSandbox",
    "SignedClient",
    "SignedResponse",
    "SlackSandbox",
    "Team",
    "User",
    "UserGroup",
    "dm_channel_id",
    "sign",
    "signed_headers",
]
