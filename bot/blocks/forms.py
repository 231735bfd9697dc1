"""The modals: the GPU request form, the approver's Deny reason, and a notice in place of either.

Each input block's id is the name of the request field it holds (bot.ids), so a refusal
from the policy lands on the right block as `response_action: errors`. Both forms open before
anything slow is known (the teams, the lease) and are completed with views.update; the input
blocks keep their ids across the update, so what the user typed meanwhile stays.
"""

from __future__ import annotations

import json
from typing import Any

from config.durations import format_duration
from config.policy import Policy, Team, Tier

from .. import ids
from .kit import Block, clip, context, plain, section

RADIO_MAX = 10  # Slack's limit on radio button options; beyond it a select is used


def _input(block_id: str, label: str, element: dict[str, Any], *, hint: str | None = None,
           optional: bool = False) -> Block:
    block: Block = {"type": "input", "block_id": block_id, "label": plain(label, 2000),
                    "element": {**element, "action_id": ids.INPUT}, "optional": optional}
    if hint:
        block["hint"] = plain(hint, 2000)
    return block


def _option(value: str, text: str, description: str | None = None) -> dict[str, Any]:
    option = {"text": plain(text, 75), "value": value}
    if description:
        option["description"] = plain(description, 75)
    return option


def _tier_text(tier: Tier) -> str:
    return f"{tier.name} · up to {tier.max_units} units, {format_duration(tier.max_duration)}"


def _tier_element(tiers: list[Tier]) -> dict[str, Any]:
    if len(tiers) <= RADIO_MAX:
        options = [_option(t.name, _tier_text(t), t.display) for t in tiers]
        return {"type": "radio_buttons", "options": options, "initial_option": options[0]}
    options = [_option(t.name, f"{t.name}: {t.display}") for t in tiers[:100]]
    return {"type": "static_select", "options": options, "initial_option": options[0]}


def request_modal(policy: Policy, teams: list[Team] | None) -> dict[str, Any]:
    """Return the request form for a user in `teams` (a team chooser only when there are several;
    None: not known yet, said in the form until it is updated)."""
    blocks: list[Block] = [
        section("Ask for GPUs in a namespace of your own. Your pods keep requesting "
                "`nvidia.com/gpu: 1`; the tier decides what one GPU is."),
        _input(ids.NAMESPACE, "Namespace", {"type": "plain_text_input", "max_length": 63,
                                            "placeholder": plain("e.g. alice-finetune")},
               hint="Lower-case letters, digits and '-'."),
    ]
    metadata: dict[str, str] = {}
    if teams is None:
        blocks.append(context("Looking up which teams you can request for…"))
    elif len(teams) > 1:
        options = [_option(t.name, t.name) for t in teams]
        blocks.append(_input(ids.TEAM, "Team (whose quota it counts against)",
                             {"type": "static_select", "options": options, "initial_option": options[0]}))
    else:
        metadata["team"] = teams[0].name
        blocks.append(context(f"Counts against the quota of team *{teams[0].name}*."))
    most = max(t.max_units for t in policy.tiers)
    blocks += [
        _input(ids.TIER, "GPU tier", _tier_element(list(policy.tiers))),
        _input(ids.UNITS, "Units (how many nvidia.com/gpu)",
               {"type": "number_input", "is_decimal_allowed": False, "min_value": "1",
                "max_value": str(most), "initial_value": "1"}),
        _input(ids.DURATION, "Duration", {"type": "plain_text_input",
                                          "placeholder": plain("e.g. 8h, 3d or 1w")},
               hint="Leave empty for the tier's default. You can extend it later.", optional=True),
        _input(ids.REASON, "What is it for?", {"type": "plain_text_input", "multiline": True,
                                               "max_length": 500}),
    ]
    return {
        "type": "modal",
        "callback_id": ids.REQUEST_VIEW,
        "title": plain("Request GPUs", 24),
        "submit": plain("Request", 24),
        "close": plain("Cancel", 24),
        "private_metadata": json.dumps(metadata),
        "blocks": blocks,
    }


def deny_modal(*, lease_id: str, namespace: str | None = None, requester: str | None = None) -> dict[str, Any]:
    """Return the modal asking an approver why a request is denied (naming it once it was read)."""
    if namespace is None or requester is None:
        question = "Deny this request? The requester will see your reason."
    else:
        question = f"Deny *{clip(namespace, 100)}* for <@{requester}>? They will see your reason."
    return {
        "type": "modal",
        "callback_id": ids.DENY_VIEW,
        "title": plain("Deny request", 24),
        "submit": plain("Deny", 24),
        "close": plain("Back", 24),
        "private_metadata": json.dumps({"l": lease_id}),
        "blocks": [
            section(question),
            _input(ids.REASON, "Reason", {"type": "plain_text_input", "multiline": True, "max_length": 500,
                                          "placeholder": plain("e.g. use h100-1g for notebooks")}),
        ],
    }


def notice_modal(*, title: str, text: str) -> dict[str, Any]:
    """Return a modal that only says something (what became of the form it replaces)."""
    return {
        "type": "modal",
        "callback_id": ids.NOTICE_VIEW,
        "title": plain(title, 24),
        "close": plain("Close", 24),
        "blocks": [section(text)],
    }
