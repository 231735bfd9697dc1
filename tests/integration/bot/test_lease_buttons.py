"""Buttons on the requester's DMs and on App Home: Extend, Release, Cancel. Each is checked
on the server (only the requester), and a second click changes nothing and says so."""

from __future__ import annotations

import threading

from sqlalchemy.exc import OperationalError

from sandbox.slack import dm_channel_id
from workflows import api

from . import flows
from .conftest import eventually


def click_in_dm(to_bot, user: str, message: dict, action: str, *, clicker: str | None = None):
    answer = to_bot.block_action(action, user_id=clicker or user, channel=dm_channel_id(user), message=message)
    assert answer.status == 200 and answer.elapsed < flows.ACK_LIMIT_S
    return answer


def test_extend_from_the_ready_message_once(to_bot, slack):
    ready = flows.active(to_bot, slack, "U0ALICE", "alice-ext")
    before = api.lease_by_namespace("alice-ext").expires_at
    click_in_dm(to_bot, "U0ALICE", ready, "lease.extend", clicker="U0BOB")
    flows.ephemeral(slack, "U0BOB", "only the requester can extend")
    click_in_dm(to_bot, "U0ALICE", ready, "lease.extend")
    flows.ephemeral(slack, "U0ALICE", "now runs until")
    click_in_dm(to_bot, "U0ALICE", ready, "lease.extend")
    flows.ephemeral(slack, "U0ALICE", "was extended since this message")
    assert (api.lease_by_namespace("alice-ext").expires_at - before).days == 1
    assert api.lease_details(flows.lease_id_of("alice-ext"))["extensions"] == 1


def test_two_clicks_on_one_extend_button_at_once_extend_once(to_bot, slack, monkeypatch):
    ready = flows.active(to_bot, slack, "U0ALICE", "alice-dbl")
    lease_id = flows.lease_id_of("alice-dbl")
    before = api.lease_by_namespace("alice-dbl").expires_at
    details = api.lease_details
    both_read = threading.Barrier(2, timeout=5)

    def read_together(lease: str):
        answer = details(lease)
        if threading.current_thread().name.startswith("bolt-listener"):
            both_read.wait()  # each click has seen "0 extensions" before either extends
        return answer

    monkeypatch.setattr(api, "lease_details", read_together)
    clicks = [threading.Thread(target=click_in_dm, args=(to_bot, "U0ALICE", ready, "lease.extend")) for _ in range(2)]
    for click in clicks:
        click.start()
    for click in clicks:
        click.join()
    eventually(
        lambda: len([e for e in slack.ephemerals(user="U0ALICE")
                     if "now runs until" in e["text"] or "extended since" in e["text"]]) == 2,
        what="both clicks answered",
    )
    monkeypatch.setattr(api, "lease_details", details)
    assert details(lease_id)["extensions"] == 1
    assert (api.lease_by_namespace("alice-dbl").expires_at - before).days == 1


def test_release_from_the_ready_message_once(to_bot, slack, kube):
    ready = flows.active(to_bot, slack, "U0ALICE", "alice-rel")
    lease_id = flows.lease_id_of("alice-rel")
    click_in_dm(to_bot, "U0ALICE", ready, "lease.release", clicker="U0CAROL")
    flows.ephemeral(slack, "U0CAROL", "only the requester or an admin")
    click_in_dm(to_bot, "U0ALICE", ready, "lease.release")
    flows.ephemeral(slack, "U0ALICE", "Releasing `alice-rel`")
    receipt = flows.dm_about(slack, "U0ALICE", "Receipt", timeout=20)
    assert "GPU-hours reserved" in str(receipt["blocks"])
    click_in_dm(to_bot, "U0ALICE", ready, "lease.release")
    flows.ephemeral(slack, "U0ALICE", "is reclaimed already")
    assert api.lease_details(lease_id)["state"] == "reclaimed"
    assert kube.get("namespaces", "alice-rel") is None


def test_cancel_a_pending_request_rewrites_its_card(to_bot, slack):
    flows.submit(to_bot, slack, "U0ALICE", "alice-cancel")
    card = flows.card(slack, "alice-cancel")
    waiting = flows.dm_about(slack, "U0ALICE", "waiting for an approver")
    click_in_dm(to_bot, "U0ALICE", waiting, "lease.cancel")
    flows.ephemeral(slack, "U0ALICE", "withdrawn")
    eventually(lambda: "Cancelled" in str(flows.current(slack, card)["blocks"]), what="the card saying so")
    click_in_dm(to_bot, "U0ALICE", waiting, "lease.cancel")
    flows.ephemeral(slack, "U0ALICE", "is cancelled already")


def test_app_home_lists_leases_and_its_buttons_answer_there(to_bot, slack):
    flows.active(to_bot, slack, "U0ALICE", "alice-home")
    opened = to_bot.app_home_opened("U0ALICE")
    assert opened.status == 200
    home = eventually(lambda: slack.home("U0ALICE"), what="the Home tab")
    text = str(home["blocks"])
    assert "alice-home" in text and "left (until" in text
    to_bot.block_action("lease.extend", user_id="U0ALICE", view=home)
    extended = eventually(lambda: "now runs until" in str(slack.home("U0ALICE")["blocks"]) and slack.home("U0ALICE"),
                          what="Home re-rendered with the outcome")
    to_bot.block_action("lease.release", user_id="U0ALICE", view=extended)
    eventually(lambda: "Releasing" in str(slack.home("U0ALICE")["blocks"]), what="the release noted on Home")
    to_bot.block_action("lease.release", user_id="U0ALICE", view=extended)
    eventually(lambda: "already" in str(slack.home("U0ALICE")["blocks"]), what="the second click answered on Home")


def test_a_home_click_while_the_store_fails_is_answered_in_a_dm(to_bot, slack, monkeypatch):
    flows.active(to_bot, slack, "U0ALICE", "alice-down")
    to_bot.app_home_opened("U0ALICE")
    home = eventually(lambda: "alice-down" in str(slack.home("U0ALICE")) and slack.home("U0ALICE"), what="Home")

    def store_down(*_: object) -> None:
        raise OperationalError("SELECT", {}, Exception("could not connect to server"))

    monkeypatch.setattr(api, "lease_details", store_down)
    monkeypatch.setattr(api, "leases_of", store_down)  # so Home cannot be rendered either
    to_bot.block_action("lease.extend", user_id="U0ALICE", view=home)
    told = flows.dm_about(slack, "U0ALICE", "Something went wrong on our side")
    assert "Quote ref " in told["text"]


def test_app_home_request_button_opens_the_form(to_bot, slack):
    to_bot.app_home_opened("U0BOB")
    home = eventually(lambda: slack.home("U0BOB"), what="the Home tab")
    assert "You hold no leases" in str(home["blocks"])
    to_bot.block_action("home.request", user_id="U0BOB", view=home)
    form = eventually(lambda: (slack.views("U0BOB") or [None])[-1], what="the request form")
    assert form["callback_id"] == "gpulease.request"


def test_its_in_use_on_an_idle_warning_is_for_the_requester_only(to_bot, slack, runtime):
    flows.active(to_bot, slack, "U0ALICE", "alice-idle")
    message = flows.idle_warning(slack, runtime, "U0ALICE", "alice-idle")
    click_in_dm(to_bot, "U0ALICE", message, "lease.mark_busy", clicker="U0BOB")
    flows.ephemeral(slack, "U0BOB", "only the requester can mark")
    click_in_dm(to_bot, "U0ALICE", message, "lease.mark_busy")
    flows.ephemeral(slack, "U0ALICE", "is in use")
