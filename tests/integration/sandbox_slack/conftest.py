"""Fixtures for the Slack sandbox's tests: a running sandbox on a manual clock, the real
slack_sdk WebClient pointed at it, and a recorder standing in for the bot's HTTP endpoint
(to check what the signing client sends)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from slack_sdk import WebClient

from sandbox.slack import DEFAULT_SIGNING_SECRET, DEFAULT_TOKEN, ManualClock, SignedClient, SlackSandbox

from .endpoint import Recorder, serve_recorder


@pytest.fixture
def clock() -> ManualClock:
    """Return the clock the sandbox runs on; tests advance it instead of sleeping."""
    return ManualClock()


@pytest.fixture
def slack(clock: ManualClock) -> Iterator[SlackSandbox]:
    """Return a running sandbox on the manual clock, stopped after the test."""
    with SlackSandbox(clock=clock) as sandbox:
        yield sandbox


@pytest.fixture
def client(slack: SlackSandbox) -> WebClient:
    """Return the real WebClient with the sandbox's bot token, without extra retry handlers."""
    return WebClient(token=DEFAULT_TOKEN, base_url=slack.url)


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    """Return a running stand-in for the bot's endpoint at <url>/slack/events."""
    with serve_recorder() as running:
        yield running


@pytest.fixture
def to_recorder(recorder: Recorder, slack: SlackSandbox) -> SignedClient:
    """Return a signing client aimed at the recorder, registering triggers with the sandbox."""
    return SignedClient(recorder.url, DEFAULT_SIGNING_SECRET, slack.url)
