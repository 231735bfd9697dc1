"""The one error handler: typed refusals shown as they are, anything else only as a reference;
every listener failure reaches it, and a listener that failed before acking still answers."""

from __future__ import annotations

import logging
from types import SimpleNamespace
from typing import Any

import pytest

from bot import errors
from leases.errors import AlreadyDecided, DomainError, NotAuthorised


@pytest.mark.parametrize(("error", "start", "shown"), [
    (AlreadyDecided("alice-nb was approved by <@U0APPROVER1>."), "ℹ️", "Nothing changed"),
    (NotAuthorised("<@U0BOB> is not an approver for tier h100-3g"), "⛔", "not an approver"),
    (DomainError("no live lease holds namespace x"), "⚠️", "no live lease"),
    (RuntimeError("database password is hunter2"), "💥", "Something went wrong"),
])
def test_messages_say_what_users_can_act_on_and_carry_the_reference(error, start, shown):
    text = errors.user_message(error, "abc123")
    assert text.startswith(start) and shown in text and "abc123" in text
    assert "hunter2" not in text  # internals stay in the log


class Ack:
    def __init__(self) -> None:
        self.response = None
        self.calls = 0

    def __call__(self, **_: Any) -> None:
        self.calls += 1
        self.response = "acked"


class Respond:
    def __init__(self) -> None:
        self.sent: list[dict] = []

    def __call__(self, **message: Any) -> None:
        self.sent.append(message)


def args(**extra: Any) -> SimpleNamespace:
    body = {"user": {"id": "U0BOB"}, "response_url": "https://hooks.example/1"}
    return SimpleNamespace(ack=Ack(), respond=Respond(), client=None, body=body, **extra)


def test_a_listener_failure_goes_to_the_handler_and_the_ack_stands(caplog):
    def listener(ack, body):
        ack()
        raise NotAuthorised(f"<@{body['user']['id']}> is not an approver")

    given = args()
    with caplog.at_level(logging.INFO, logger="bot.errors"):
        errors.reported(deps=None)(listener)(given)  # type: ignore[arg-type]
    assert given.ack.calls == 1
    [told] = given.respond.sent
    assert told["response_type"] == "ephemeral" and "not an approver" in told["text"]
    ref = told["text"].rsplit("ref ", 1)[1].rstrip(")")
    assert any(ref in record.getMessage() for record in caplog.records)


def test_an_ack_function_that_fails_before_acking_still_answers_slack(caplog):
    def check(view):
        raise KeyError(view["missing"])

    given = args(view={})
    with caplog.at_level(logging.ERROR, logger="bot.errors"):
        errors.reported(deps=None, acks=True)(check)(given)  # type: ignore[arg-type]
    assert given.ack.calls == 1 and "Something went wrong" in given.respond.sent[0]["text"]
    assert caplog.records[0].exc_info is not None  # the traceback is logged, not shown


def test_work_after_the_ack_never_acks_again():
    def work(view):
        raise DomainError("no live lease holds namespace x")

    given = args(view={})
    errors.reported(deps=None)(work)(given)  # type: ignore[arg-type]
    assert given.ack.calls == 0 and "no live lease" in given.respond.sent[0]["text"]


def test_the_wrapper_asks_bolt_for_args_only():
    import inspect

    def listener(ack, body, client):
        pass

    wrapped = errors.reported(deps=None)(listener)  # type: ignore[arg-type]
    assert list(inspect.signature(wrapped).parameters) == ["args"] and wrapped.__name__ == "listener"
