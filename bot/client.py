"""The one Slack Web API client: every call the bot and the notifier make goes through it.

slack_sdk turns on only a connection-error retry by default; Slack asks clients to honour
429 Retry-After, and its 5xx are usually brief, so this client retries all three, a bounded
number of times. Imported by bot.app, bot.notifier and the composition root.

A second, quick client serves the calls a person is waiting on within Slack's 3 s (views.open
with a trigger, a directory lookup before an ack): it never sleeps on a 429's Retry-After and
gives up after a short timeout, because an answer after 3 s is worth nothing there; only a
5xx, which Slack answers at once, is tried a second time.
"""

from __future__ import annotations

import logging

from slack_sdk import WebClient
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)
from slack_sdk.http_retry.builtin_interval_calculators import FixedValueRetryIntervalCalculator

SLACK_API_URL = "https://slack.com/api/"
# Bounded: a listener's follow-up or an outbox send gives up and lets the outbox (which
# retries every sweep) or the user try again, rather than holding a thread for minutes.
CONNECTION_RETRIES = 2
RATE_LIMIT_RETRIES = 3
SERVER_ERROR_RETRIES = 2
TIMEOUT_S = 10
QUICK_TIMEOUT_S = 2  # leaves room in the 3 s for the rest of the ack


def make_client(token: str, *, base_url: str = SLACK_API_URL, timeout: int = TIMEOUT_S) -> WebClient:
    """Return a WebClient that retries connection errors, 429 (after Retry-After) and 5xx."""
    return WebClient(
        token=token,
        base_url=base_url,
        timeout=timeout,
        logger=logging.getLogger("bot.slack_api"),
        retry_handlers=[
            ConnectionErrorRetryHandler(max_retry_count=CONNECTION_RETRIES),
            RateLimitErrorRetryHandler(max_retry_count=RATE_LIMIT_RETRIES),
            ServerErrorRetryHandler(max_retry_count=SERVER_ERROR_RETRIES),
        ],
    )


def make_quick_client(token: str | None, *, base_url: str = SLACK_API_URL,
                      timeout: int = QUICK_TIMEOUT_S) -> WebClient:
    """Return a WebClient with a short timeout that retries only a 5xx, once, at once, for
    calls made before an ack."""
    # A 5xx comes back fast and is usually brief: one retry 0.1 s later still fits in the 3 s.
    # Nothing else is retried: a retry after a 429's Retry-After or a timeout lands after Slack
    # stopped waiting.
    return WebClient(token=token, base_url=base_url, timeout=timeout,
                     logger=logging.getLogger("bot.slack_api"),
                     retry_handlers=[ServerErrorRetryHandler(
                         max_retry_count=1, interval_calculator=FixedValueRetryIntervalCalculator(0.1))])
