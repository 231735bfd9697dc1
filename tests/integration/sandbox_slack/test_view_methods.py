"""views.* through the real WebClient: modals opened with trigger ids that expire and are
spent, pushed, updated with hashes, home tabs, and Block Kit refusals."""

from __future__ import annotations

from typing import Any

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from sandbox.slack import ManualClock, SlackSandbox


def modal(title: str = "Request GPUs", blocks: list[dict[str, Any]] | None = None, **extra: Any) -> dict[str, Any]:
    """Return a small modal view."""
    return {"type": "modal", "callback_id": "request", "title": {"type": "plain_text", "text": title},
            "blocks": blocks if blocks is not None else [{"type": "divider"}], **extra}


def refusal(call) -> dict:
    """Run a call expected to fail and return Slack's error body."""
    with pytest.raises(SlackApiError) as caught:
        call()
    return caught.value.response.data


def test_views_open_shows_the_modal_to_the_trigger_user(client: WebClient, slack: SlackSandbox) -> None:
    answer = client.views_open(trigger_id=slack.issue_trigger("U0ALICE"), view=modal(private_metadata="42"))

    view = answer["view"]
    assert view["id"].startswith("V") and view["hash"] and view["root_view_id"] == view["id"]
    assert view["private_metadata"] == "42" and view["callback_id"] == "request"
    assert [v["id"] for v in slack.views("U0ALICE")] == [view["id"]] and slack.views("U0BOB") == []


def test_trigger_ids_expire_after_three_seconds(client: WebClient, slack: SlackSandbox, clock: ManualClock) -> None:
    in_time = slack.issue_trigger("U0ALICE")
    late = slack.issue_trigger("U0ALICE")
    clock.advance(2.9)
    client.views_open(trigger_id=in_time, view=modal())
    clock.advance(0.2)

    assert refusal(lambda: client.views_open(trigger_id=late, view=modal()))["error"] == "expired_trigger_id"


def test_trigger_ids_are_single_use_and_must_be_known(client: WebClient, slack: SlackSandbox) -> None:
    trigger = slack.issue_trigger("U0ALICE")
    client.views_open(trigger_id=trigger, view=modal())

    assert refusal(lambda: client.views_open(trigger_id=trigger, view=modal()))["error"] == "exchanged_trigger_id"
    assert refusal(lambda: client.views_open(trigger_id="1.2.made-up", view=modal()))["error"] == (
        "invalid_trigger_id"
    )


def test_modal_title_over_24_characters_is_refused_as_slack_reports_it(client: WebClient, slack: SlackSandbox) -> None:
    body = refusal(lambda: client.views_open(trigger_id=slack.issue_trigger("U0ALICE"), view=modal("x" * 25)))

    assert body["error"] == "invalid_arguments"
    assert "[ERROR] must be less than 24 characters [json-pointer:/view/title/text]" in (
        body["response_metadata"]["messages"]
    )
    client.views_open(trigger_id=slack.issue_trigger("U0ALICE"), view=modal("x" * 24))


@pytest.mark.parametrize(
    ("view", "message"),
    [
        (modal(blocks=[{"type": "divider"}] * 101), "[ERROR] no more than 100 items allowed [json-pointer:/view/blocks]"),
        (modal(blocks=[{"type": "input", "label": {"type": "plain_text", "text": "Name"},
                        "element": {"type": "plain_text_input", "action_id": "name"}}]),
         "[ERROR] submit is required when an input block is present [json-pointer:/view/submit]"),
        (modal(private_metadata="x" * 3001),
         "[ERROR] must be less than 3001 characters [json-pointer:/view/private_metadata]"),
        (modal(blocks=[{"block_id": "b"}]), "[ERROR] missing required field: type [json-pointer:/view/blocks/0]"),
    ],
)
def test_invalid_views_are_refused(client: WebClient, slack: SlackSandbox, view: dict, message: str) -> None:
    body = refusal(lambda: client.views_open(trigger_id=slack.issue_trigger("U0ALICE"), view=view))
    assert body["error"] == "invalid_arguments" and message in body["response_metadata"]["messages"]


def test_oversized_views_are_too_large(client: WebClient, slack: SlackSandbox) -> None:
    huge = modal(blocks=[{"type": "section", "text": {"type": "mrkdwn", "text": "x" * 2900}}] * 90)
    assert refusal(lambda: client.views_open(trigger_id=slack.issue_trigger("U0ALICE"), view=huge))["error"] == (
        "view_too_large"
    )


def test_views_push_stacks_up_to_three(client: WebClient, slack: SlackSandbox) -> None:
    root = client.views_open(trigger_id=slack.issue_trigger("U0ALICE"), view=modal("Root"))["view"]
    second = client.views_push(trigger_id=slack.issue_trigger("U0ALICE"), view=modal("Second"))["view"]
    client.views_push(trigger_id=slack.issue_trigger("U0ALICE"), view=modal("Third"))

    assert second["root_view_id"] == root["id"] and second["previous_view_id"] == root["id"]
    assert [v["title"]["text"] for v in slack.views("U0ALICE")] == ["Root", "Second", "Third"]
    body = refusal(lambda: client.views_push(trigger_id=slack.issue_trigger("U0ALICE"), view=modal("Fourth")))
    assert body["error"] == "push_limit_reached"


def test_views_update_checks_the_hash(client: WebClient, slack: SlackSandbox, clock: ManualClock) -> None:
    opened = client.views_open(trigger_id=slack.issue_trigger("U0ALICE"), view=modal("Loading"))["view"]
    clock.advance(1)
    updated = client.views_update(view_id=opened["id"], hash=opened["hash"], view=modal("Ready"))["view"]

    assert updated["id"] == opened["id"] and updated["hash"] != opened["hash"]
    assert slack.views("U0ALICE")[0]["title"]["text"] == "Ready"
    assert refusal(lambda: client.views_update(view_id=opened["id"], hash=opened["hash"], view=modal()))[
        "error"] == "hash_conflict"
    assert refusal(lambda: client.views_update(view_id="V404", view=modal()))["error"] == "not_found"
    assert refusal(lambda: client.api_call("views.update", json={"view": modal()}))["error"] == "invalid_arguments"


def test_views_update_by_external_id(client: WebClient, slack: SlackSandbox) -> None:
    client.views_open(trigger_id=slack.issue_trigger("U0ALICE"), view=modal(external_id="req-7"))
    client.views_update(external_id="req-7", view=modal("Done", external_id="req-7"))

    assert slack.views("U0ALICE")[0]["title"]["text"] == "Done"
    body = refusal(lambda: client.views_open(trigger_id=slack.issue_trigger("U0BOB"), view=modal(external_id="req-7")))
    assert body["error"] == "duplicate_external_id"


def test_views_publish_keeps_one_home_per_user(client: WebClient, slack: SlackSandbox, clock: ManualClock) -> None:
    home = {"type": "home", "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "no leases"}}]}
    first = client.views_publish(user_id="U0ALICE", view=home)["view"]
    clock.advance(1)
    home["blocks"][0]["text"]["text"] = "1 lease"
    second = client.views_publish(user_id="U0ALICE", view=home, hash=first["hash"])["view"]

    assert second["id"] == first["id"] and slack.home("U0ALICE")["blocks"][0]["text"]["text"] == "1 lease"
    assert slack.home("U0BOB") is None
    assert refusal(lambda: client.views_publish(user_id="U0ALICE", view=home, hash=first["hash"]))["error"] == (
        "hash_conflict"
    )
    assert refusal(lambda: client.views_publish(user_id="U0NOBODY", view=home))["error"] == "invalid_arguments"
    too_many = {"type": "home", "blocks": [{"type": "divider"}] * 101}
    assert refusal(lambda: client.views_publish(user_id="U0ALICE", view=too_many))["error"] == "invalid_arguments"
