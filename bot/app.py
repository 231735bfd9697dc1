"""The Bolt app: one WebClient (with retry handlers), request verification, the metrics
middleware, the error handler and every feature's listeners.

    client = make_client(token, base_url=...)
    app = build_app(client=client, signing_secret=secret, policy=policy)

Served over HTTP by bot.web (gunicorn in `gpulease serve`) or over Socket Mode
(`gpulease socket`). Needs a workflow runtime installed in the process: listeners call
workflows.api. Imported by the composition root and tests.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from slack_bolt import App
from slack_sdk import WebClient

from config.policy import Policy

from . import errors, metrics
from .client import make_quick_client
from .deps import BotDeps
from .directory import Directory, policy_groups
from .listeners import register_all

# The work after each ack (bot.listen) runs on this pool. Acks do not need it: they run in
# the request's thread. Kept small so, under a burst, the work queues here instead of every
# request thread fighting it for the GIL.
LISTENER_THREADS = 8


def build_app(*, client: WebClient, signing_secret: str | None, policy: Policy,
              directory: Directory | None = None, extend_step: timedelta = timedelta(days=1),
              socket_mode: bool = False) -> App:
    """Return the Bolt app with every listener registered.

    In Socket Mode Slack's WebSocket is authenticated by the app token, so there is no
    signature to verify; over HTTP every request must carry a valid one (401 otherwise).
    """
    app = App(
        client=client,
        # Acks are sent when the ack function returns; the work is a lazy listener (bot.listen).
        process_before_response=True,
        signing_secret=signing_secret if not socket_mode else None,
        request_verification_enabled=not socket_mode,
        listener_executor=ThreadPoolExecutor(max_workers=LISTENER_THREADS, thread_name_prefix="bolt-listener"),
        logger=logging.getLogger("bot.bolt"),
    )
    # Same token and API as `client`, without its retries: for calls Slack's 3 s are waiting on.
    quick = make_quick_client(client.token, base_url=client.base_url)
    if directory is None:
        directory = Directory(client, policy_groups(policy), lookup_client=quick)
    deps = BotDeps(policy=policy, directory=directory, quick_client=quick, extend_step=extend_step)
    metrics.register(app)
    errors.register(app, deps)
    register_all(app, deps)
    return app
