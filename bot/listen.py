"""How every listener is registered: Slack is answered in the request's own thread, the work
follows in the listener pool.

Bolt runs a listener in its pool and has the request thread poll every 10 ms until the
listener acks, so an ack costs at least 10 ms, and under load it waits for a pool thread
behind other listeners' Slack and store calls. Bolt's lazy listeners split the two: with
`process_before_response=True` the ack function runs in the request thread and the HTTP
answer goes out when it returns; the work (a lazy function) is then started in the pool.
Measured with bench.ack_latency, this is what keeps acks fast under a burst.

    listen(app.action(ids.APPROVE), deps, approve)              # ack() at once, then approve(...)
    listen(app.view(ids.REQUEST_VIEW), deps, record, ack=check)  # check() acks (errors or not)

Both halves go through `errors.reported`, so a failure in either reaches the one handler.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from slack_bolt import Ack

from .deps import BotDeps
from .errors import reported


def acknowledge(ack: Ack) -> None:
    """Answer Slack at once with an empty 200; the work follows."""
    ack()


def listen(route: Callable[..., Any], deps: BotDeps, work: Callable[..., None], *,
           ack: Callable[..., None] = acknowledge) -> None:
    """Register `ack` to answer Slack and `work` to run after it, both reporting failures."""
    route(reported(deps, acks=True)(ack), reported(deps)(work))
