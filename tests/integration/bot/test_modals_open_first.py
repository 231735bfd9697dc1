"""Modals open before anything slow: /gpu-namespace, App Home's Request button and Deny call
views.open in the ack, while the 3 s trigger is fresh, and fill the modal in afterwards. A
rate-limited directory (usergroups.users.list answering 429 with Retry-After) delays only
the filling in, and a trigger Slack says expired is answered with what to do."""

from __future__ import annotations

from workflows import api

from . import flows
from .conftest import eventually


def test_the_form_opens_before_the_ack_even_when_the_directory_is_rate_limited(to_bot, slack):
    # The directory has read nothing yet; Slack makes it wait 3 s, the trigger's whole life.
    slack.add_fault("usergroups.users.list", status=429, retry_after=3, times=1)
    answer = to_bot.slash_command("/gpu-namespace", user_id="U0ALICE")
    assert answer.status == 200 and answer.elapsed < flows.ACK_LIMIT_S
    # Already opened when the ack came back: nothing waited for the directory or a pool thread.
    [opened] = slack.calls("views.open")
    assert opened.ok and "Looking up which teams" in str(slack.views("U0ALICE")[0]["blocks"])
    # The teams follow once Slack lets the directory read them (after Retry-After).
    form = flows.form_of(slack, "U0ALICE")
    assert form["id"] == opened.response["view"]["id"] and '"team": "ml-research"' in form["private_metadata"]
    assert any(c.status == 429 for c in slack.calls("usergroups.users.list"))  # the directory did wait
    assert not slack.ephemerals(user="U0ALICE")  # nothing went wrong, nothing to say
    answer = to_bot.view_submission(form, flows.values("alice-late"), user_id="U0ALICE")
    assert answer.json() is None
    flows.card(slack, "alice-late")


def test_a_submit_before_the_teams_are_shown_counts_against_the_only_team(to_bot, slack):
    slack.add_fault("usergroups.users.list", status=429, retry_after=3, times=1)
    to_bot.slash_command("/gpu-namespace", user_id="U0BOB")
    early = slack.views("U0BOB")[0]  # the form as it opened, before the teams were read
    answer = to_bot.view_submission(early, flows.values("bob-early"), user_id="U0BOB")
    assert answer.status == 200 and answer.elapsed < flows.ACK_LIMIT_S and answer.json() is None
    lease = api.lease_details(flows.lease_id_of("bob-early"))
    assert lease["team"] == "ml-research"


def test_an_expired_trigger_is_answered_with_what_to_do(to_bot, slack):
    slack.add_fault("views.open", status=200, error="expired_trigger_id")
    to_bot.slash_command("/gpu-namespace", user_id="U0ALICE")
    note = flows.ephemeral(slack, "U0ALICE", "Slack took too long to open the form")
    assert "please run /gpu-namespace again" in note["text"] and "Something went wrong" not in note["text"]
    assert slack.views("U0ALICE") == []


def test_a_brief_slack_error_on_views_open_is_tried_once_more(to_bot, slack):
    slack.add_fault("views.open", status=503, times=1)
    answer = to_bot.slash_command("/gpu-namespace", user_id="U0ALICE")
    assert answer.status == 200 and answer.elapsed < flows.ACK_LIMIT_S
    assert [c.status for c in slack.calls("views.open")] == [503, 200]
    assert flows.form_of(slack, "U0ALICE")["callback_id"] == "gpulease.request"


def test_the_home_button_opens_the_form_before_the_ack(to_bot, slack):
    to_bot.app_home_opened("U0BOB")
    home = eventually(lambda: slack.home("U0BOB"), what="the Home tab")
    slack.add_fault("usergroups.users.list", status=429, retry_after=3, times=1)
    click = to_bot.block_action("home.request", user_id="U0BOB", view=home)
    assert click.elapsed < flows.ACK_LIMIT_S and [c.ok for c in slack.calls("views.open")] == [True]
    assert flows.form_of(slack, "U0BOB")["callback_id"] == "gpulease.request"


def test_deny_opens_its_modal_before_reading_the_lease_and_the_approvers(to_bot, slack):
    flows.submit(to_bot, slack, "U0ALICE", "alice-deny")
    card = flows.card(slack, "alice-deny")
    click = to_bot.block_action("lease.deny", user_id="U0APPROVER1", channel=flows.APPROVALS, message=card)
    assert click.elapsed < flows.ACK_LIMIT_S
    # Opened by the time the click was answered: before the work half read anything.
    opened = slack.calls("views.open")[-1]
    assert opened.ok and opened.response["view"]["callback_id"] == "gpulease.deny"
    assert "Deny this request?" in str(opened.response["view"]["blocks"])
    modal = flows.modal(slack, "U0APPROVER1", "Deny *alice-deny* for <@U0ALICE>?")
    to_bot.view_submission(modal, {"reason": {"value": "too big for a notebook"}}, user_id="U0APPROVER1")
    flows.dm_about(slack, "U0ALICE", "denied alice-deny: too big for a notebook")


def test_a_deny_whose_trigger_expired_says_to_click_again(to_bot, slack):
    flows.submit(to_bot, slack, "U0ALICE", "alice-late-deny")
    card = flows.card(slack, "alice-late-deny")
    slack.add_fault("views.open", status=200, error="expired_trigger_id")
    to_bot.block_action("lease.deny", user_id="U0APPROVER1", channel=flows.APPROVALS, message=card)
    note = flows.ephemeral(slack, "U0APPROVER1", "Slack took too long to open the Deny form")
    assert "please click Deny again" in note["text"]
    assert api.lease_details(flows.lease_id_of("alice-late-deny"))["state"] == "pending_approval"
