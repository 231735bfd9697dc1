"""Injected faults against slack_sdk's own retry handlers: a 429 with Retry-After and
500/503 are retried and the message arrives exactly once; without a handler the error
reaches the caller; ok:false faults carry the chosen error."""

from __future__ import annotations

import time

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry import FixedValueRetryIntervalCalculator, RateLimitErrorRetryHandler
from slack_sdk.http_retry.builtin_handlers import ServerErrorRetryHandler

from sandbox.slack import DEFAULT_TOKEN, SlackSandbox


def test_rate_limit_is_retried_after_retry_after_and_posts_once(slack: SlackSandbox) -> None:
    slack.add_fault("chat.postMessage", status=429, retry_after=1)
    client = WebClient(token=DEFAULT_TOKEN, base_url=slack.url,
                       retry_handlers=[RateLimitErrorRetryHandler(max_retry_count=1)])

    started = time.perf_counter()
    answer = client.chat_postMessage(channel="C0APPROVALS", text="request")
    elapsed = time.perf_counter() - started

    assert answer["ok"] is True
    assert [m["text"] for m in slack.messages("C0APPROVALS")] == ["request"]
    first, second = slack.calls("chat.postMessage")
    assert (first.status, first.fault, first.response) == (429, True, {"ok": False, "error": "ratelimited"})
    assert second.ok
    assert elapsed >= 1.0  # the handler waited the Retry-After the sandbox sent


def test_rate_limit_without_a_retry_handler_reaches_the_caller(slack: SlackSandbox, client: WebClient) -> None:
    slack.add_fault("chat.postMessage", status=429, retry_after=7)

    with pytest.raises(SlackApiError) as caught:
        client.chat_postMessage(channel="C0APPROVALS", text="x")

    assert caught.value.response.status_code == 429
    assert caught.value.response.headers["Retry-After"] == "7"
    assert caught.value.response["error"] == "ratelimited"
    assert slack.messages("C0APPROVALS") == []


@pytest.mark.parametrize("status", [500, 503])
def test_server_errors_are_retried_by_the_server_error_handler(slack: SlackSandbox, status: int) -> None:
    slack.add_fault("chat.update", status=status, times=2)
    client = WebClient(token=DEFAULT_TOKEN, base_url=slack.url, retry_handlers=[
        ServerErrorRetryHandler(max_retry_count=2, interval_calculator=FixedValueRetryIntervalCalculator(0.01)),
    ])
    posted = client.chat_postMessage(channel="C0APPROVALS", text="pending")

    client.chat_update(channel="C0APPROVALS", ts=posted["ts"], text="approved")

    assert [c.status for c in slack.calls("chat.update")] == [status, status, 200]
    assert [m["text"] for m in slack.messages("C0APPROVALS")] == ["approved"]


def test_nth_and_times_pick_which_calls_fail(slack: SlackSandbox, client: WebClient) -> None:
    slack.add_fault("users.info", status=200, error="fatal_error", nth=2, times=2)
    outcomes = []
    for _ in range(4):
        try:
            outcomes.append(client.users_info(user="U0ALICE")["ok"])
        except SlackApiError as error:
            outcomes.append(error.response["error"])

    assert outcomes == [True, "fatal_error", "fatal_error", True]
    [fault] = slack.faults()
    assert fault.spent and fault.hits == 2


def test_an_ok_false_fault_answers_without_running_the_method(slack: SlackSandbox, client: WebClient) -> None:
    slack.add_fault("chat.postMessage", status=200, error="channel_not_found")

    with pytest.raises(SlackApiError) as caught:
        client.chat_postMessage(channel="C0APPROVALS", text="x")

    assert caught.value.response.status_code == 200 and caught.value.response["error"] == "channel_not_found"
    assert slack.messages("C0APPROVALS") == []


def test_wildcard_faults_and_delays(slack: SlackSandbox, client: WebClient) -> None:
    slack.add_fault("*", status=200, error="internal_error", delay=0.2)

    started = time.perf_counter()
    with pytest.raises(SlackApiError):
        client.auth_test()

    assert time.perf_counter() - started >= 0.2
    assert client.auth_test()["ok"] is True


def test_faults_need_sensible_options(slack: SlackSandbox) -> None:
    with pytest.raises(ValueError, match="error name"):
        slack.add_fault("chat.postMessage", status=200)
    with pytest.raises(ValueError, match="count from 1"):
        slack.add_fault("chat.postMessage", nth=0)
