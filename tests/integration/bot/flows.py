"""Steps users take, as helpers: open the form, fill it in, find the approval card, wait for
a DM. Each acts only through signed requests and reads only what the Slack sandbox saw."""

from __future__ import annotations

from typing import Any

from sandbox.slack import SignedClient, SlackSandbox, dm_channel_id, payloads
from workflows import api

from .conftest import eventually

APPROVALS = "C0APPROVALS"
ACK_LIMIT_S = 3.0


def open_form(to_bot: SignedClient, slack: SlackSandbox, user: str) -> dict[str, Any]:
    """Type /gpu-namespace and return the modal it opened, once it shows the user's teams."""
    answer = to_bot.slash_command("/gpu-namespace", user_id=user)
    assert answer.status == 200 and answer.elapsed < ACK_LIMIT_S
    return form_of(slack, user)


def form_of(slack: SlackSandbox, user: str) -> dict[str, Any]:
    """Return the user's request form once the app filled in their teams (it opens without)."""
    def filled() -> dict[str, Any] | None:
        form = (slack.views(user) or [None])[-1]
        teams_shown = form is not None and ('"team"' in form.get("private_metadata", "")
                                            or any(b.get("block_id") == "team" for b in form["blocks"]))
        return form if teams_shown else None

    return eventually(filled, what=f"the request form for {user}, with their teams")


def modal(slack: SlackSandbox, user: str, fragment: str) -> dict[str, Any]:
    """Return the user's open modal once it says `fragment` (forms are completed after they open)."""
    return eventually(lambda: next((v for v in slack.views(user)[-1:] if fragment in str(v["blocks"])), None),
                      what=f"a modal for {user} saying {fragment!r}")


def values(namespace: str, *, tier: str = "h100-3g", units: int | str = 1, duration: str | None = "2d",
           reason: str = "fine-tuning a 7B model", team: str | None = None) -> dict[str, dict[str, Any]]:
    """Return the form's input as the user filled it in."""
    filled: dict[str, dict[str, Any]] = {
        "namespace": {"value": namespace},
        "tier": {"value": payloads.radio_buttons(tier)},
        "units": {"value": payloads.number_input(units)},
        "duration": {"value": duration},
        "reason": {"value": reason},
    }
    if team is not None:
        filled["team"] = {"value": payloads.static_select(team)}
    return filled


def submit(to_bot: SignedClient, slack: SlackSandbox, user: str, namespace: str, **fields: Any):
    """Open the form, submit it filled in; return the app's answer to the submission."""
    form = open_form(to_bot, slack, user)
    answer = to_bot.view_submission(form, values(namespace, **fields), user_id=user)
    assert answer.status == 200 and answer.elapsed < ACK_LIMIT_S
    return answer


def card(slack: SlackSandbox, namespace: str) -> dict[str, Any]:
    """Return the approval card about `namespace` once it was posted."""
    def find() -> dict[str, Any] | None:
        return next((m for m in slack.messages(APPROVALS) if f"as {namespace} " in m.get("text", "")
                     or f"extend {namespace} " in m.get("text", "")), None)

    return eventually(find, what=f"the approval card for {namespace}")


def current(slack: SlackSandbox, message: dict[str, Any], channel: str = APPROVALS) -> dict[str, Any]:
    """Return a message as it is now (after chat.update)."""
    return next(m for m in slack.messages(channel) if m["ts"] == message["ts"])


def dms(slack: SlackSandbox, user: str) -> list[dict[str, Any]]:
    """Return every message the bot sent the user: thread parents and replies, each once."""
    channel = dm_channel_id(user)
    found: dict[str, dict[str, Any]] = {}
    for parent in slack.messages(channel):
        found.setdefault(parent["ts"], parent)
        for reply in slack.messages(channel, parent["ts"]):
            found.setdefault(reply["ts"], reply)  # a broadcast reply is also a top-level message
    return list(found.values())


def dm_about(slack: SlackSandbox, user: str, fragment: str, *, timeout: float = 10.0) -> dict[str, Any]:
    """Return the first DM to `user` whose text contains `fragment`, once it arrived."""
    return eventually(lambda: next((m for m in dms(slack, user) if fragment in m.get("text", "")), None),
                      timeout=timeout, what=f"a DM to {user} saying {fragment!r}")


def lease_id_of(namespace: str) -> str:
    """Return the id of the live lease holding `namespace`."""
    return eventually(lambda: _live(namespace), what=f"a lease for {namespace}")


def _live(namespace: str) -> str | None:
    return next((lease.id for lease in api.leases(live=True) if lease.namespace == namespace), None)


def active(to_bot: SignedClient, slack: SlackSandbox, user: str, namespace: str) -> dict[str, Any]:
    """Request a small auto-approved lease and return the 'is ready' DM once it is active."""
    submit(to_bot, slack, user, namespace, tier="h100-1g", duration="8h")
    return dm_about(slack, user, f"{namespace} is ready", timeout=20)


def ephemeral(slack: SlackSandbox, user: str, fragment: str) -> dict[str, Any]:
    """Return the ephemeral message shown to `user` containing `fragment`, once shown."""
    return eventually(lambda: next((e for e in slack.ephemerals(user=user) if fragment in e.get("text", "")), None),
                      what=f"an ephemeral to {user} saying {fragment!r}")


def lease_id_of_any(namespace: str) -> str:
    """Return the id of the newest lease (live or not) that asked for `namespace`."""
    return next(lease.id for lease in api.leases(live=False) if lease.namespace == namespace)


def idle_warning(slack: SlackSandbox, runtime: Any, user: str, namespace: str) -> dict[str, Any]:
    """Send the requester of an active lease its idle warning (with its buttons), as the idle
    sweep would, and return the message as Slack shows it."""
    from leases.ports import Notice

    lease = api.lease_details(lease_id_of(namespace))
    warning = Notice("lease.idle_warning", f"{namespace} has had no GPU use for 12h.", lease,
                     actions=("mark_busy", "extend", "release"))
    ref = runtime.notifier.to_requester(user=user, thread=None, notice=warning)
    return next(m for m in slack.messages(ref.channel) if m["ts"] == ref.ts)
