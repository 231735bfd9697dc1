"""`gpulease dev`: the embedded stack kept running, with a local web page that plays Slack.

Pick who you are, type slash commands, see the approvals channel, your DMs and App Home,
click buttons and fill in modals; every action reaches the real bot as a signed request.

    with running(Path("dev-out"), port=0) as server:   # the stack and the page, both stopped on exit
        print(server.url)

Part of the composition root; imported by gpulease.cli_dev and tests.
"""

from gpulease.dev.server import DevServer, PortUnavailable, running
from gpulease.dev.session import DevSession

__all__ = ["DevServer", "DevSession", "PortUnavailable", "running"]
