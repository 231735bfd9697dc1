"""The /_sandbox/ endpoints read from another thread over HTTP, as a Celery worker's test
or the demo page in another process would: calls, bounded waits, messages, faults, reset."""

from __future__ import annotations

import threading

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from sandbox.slack import RemoteSandbox, SlackSandbox


def later(action) -> threading.Thread:
    """Run an action in another thread, as a worker would; return the started thread."""
    thread = threading.Thread(target=action)
    thread.start()
    return thread


def test_wait_for_calls_over_http_sees_a_post_from_another_thread(slack: SlackSandbox, client: WebClient) -> None:
    remote = RemoteSandbox(slack.url)
    worker = later(lambda: client.chat_postMessage(channel="D0ALICE", text="namespace ready"))

    [call] = remote.wait_for_calls("chat.postMessage", 1, timeout=5)
    worker.join()

    assert call["args"]["channel"] == "D0ALICE" and call["ok"] is True and call["token"].endswith("...")
    assert [m["text"] for m in remote.messages("D0ALICE")] == ["namespace ready"]
    assert [c["method"] for c in remote.calls()] == ["chat.postMessage"]


def test_waits_are_bounded_and_say_what_they_saw(slack: SlackSandbox, client: WebClient) -> None:
    client.auth_test()
    with pytest.raises(TimeoutError, match=r"got 0; calls so far: \['auth.test'\]"):
        RemoteSandbox(slack.url).wait_for_calls("views.open", 1, timeout=0.2)
    with pytest.raises(TimeoutError, match="chat.update"):
        slack.wait_for_calls("chat.update", 1, timeout=0.1)


def test_wait_for_messages_in_process_and_over_http(slack: SlackSandbox, client: WebClient) -> None:
    parent = client.chat_postMessage(channel="C0APPROVALS", text="card")
    worker = later(lambda: [client.chat_postMessage(channel="C0APPROVALS", text=t, thread_ts=parent["ts"])
                            for t in ("placing", "active")])

    replies = RemoteSandbox(slack.url).wait_for_messages("C0APPROVALS", 2, thread_ts=parent["ts"], timeout=5)
    worker.join()

    assert [m["text"] for m in replies] == ["placing", "active"]
    assert len(slack.wait_for_messages("C0APPROVALS", 1)) == 1


def test_faults_over_http(slack: SlackSandbox, client: WebClient) -> None:
    remote = RemoteSandbox(slack.url)
    fault = remote.add_fault("chat.postMessage", status=503, times=1)

    assert fault["status"] == 503 and fault["error"] == "service_unavailable"
    with pytest.raises(SlackApiError, match="service_unavailable"):
        client.chat_postMessage(channel="C0GENERAL", text="x")
    assert remote.faults()[0]["spent"] is True
    remote.clear_faults()
    assert remote.faults() == []


def test_seeding_views_and_reset_over_http(slack: SlackSandbox, client: WebClient) -> None:
    remote = RemoteSandbox(slack.url)
    seeded = remote.post_as_user("C0GENERAL", "U0BOB", "hello bot")
    client.views_open(trigger_id=remote.issue_trigger("U0BOB"),
                      view={"type": "modal", "title": {"type": "plain_text", "text": "T"}, "blocks": []})

    assert remote.messages("C0GENERAL")[0]["user"] == "U0BOB" and seeded["channel"] == "C0GENERAL"
    assert remote.views("U0BOB")[0]["title"]["text"] == "T"
    assert remote.directory()["bot"]["bot_id"] == "B0GPULEASE"
    remote.reset()
    assert remote.calls() == [] and remote.messages("C0GENERAL") == [] and remote.views("U0BOB") == []


def test_unknown_admin_paths_are_404(slack: SlackSandbox) -> None:
    with pytest.raises(RuntimeError, match="HTTP 404"):
        RemoteSandbox(slack.url)._request("GET", "nothing-here")
