"""The policy engine: may this request go ahead, and does a human need to approve it?

Pure functions of (policy, request, usage). Usage is a snapshot the caller reads from the
store (team use per tier, the requester's live leases, live namespace names), so the same
rules serve the Slack modal, the workflow and `gpulease policy evaluate`. Every refusal names
the request field it is about and says what to do instead.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Literal

from config.durations import format_duration
from config.policy import AutoApprovalRule, Policy, Team
from leases.tiers import gpu_equivalents

NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
ALWAYS_RESERVED_PREFIXES = ("kube-", "openshift-")
ALWAYS_RESERVED_NAMES = ("default",)


@dataclass(frozen=True)
class Request:
    """What a requester asks for, before anything is stored."""

    requester: str
    team: str
    tier: str
    units: int
    namespace: str
    duration: timedelta | None = None  # None: the tier's default
    requester_groups: frozenset[str] = frozenset()  # Slack user groups the requester is in


@dataclass(frozen=True)
class Usage:
    """What is already held, read from the store by the caller."""

    team_units: Mapping[str, int] = field(default_factory=dict)  # tier -> live units of the team
    user_live_leases: int = 0
    live_namespaces: frozenset[str] = frozenset()


@dataclass(frozen=True)
class FieldError:
    field: str
    message: str


@dataclass(frozen=True)
class Evaluation:
    """The verdict on a request: allowed or not (with every reason), and who approves."""

    allowed: bool
    errors: tuple[FieldError, ...]
    approval: Literal["auto", "required"]
    rule: str | None
    duration: timedelta | None

    def as_dict(self) -> dict:
        """Return the JSON shape printed by `gpulease policy evaluate --json`."""
        return {
            "allowed": self.allowed,
            "errors": [{"field": e.field, "message": e.message} for e in self.errors],
            "approval": self.approval,
            "rule": self.rule,
        }


def teams_of(policy: Policy, *, user: str, groups: frozenset[str] = frozenset()) -> list[Team]:
    """Return the teams a Slack user belongs to (listed as member, or via a user group)."""
    return [
        t for t in policy.teams if user in t.members or (t.slack_usergroup and t.slack_usergroup in groups)
    ]


def namespace_errors(policy: Policy, name: str, *, live_namespaces: frozenset[str]) -> list[str]:
    """Return why a namespace name cannot be used (empty when it can)."""
    if not name:
        return ["give a namespace name"]
    if len(name) > 63:
        return [f"{name!r} is {len(name)} characters long; use at most 63"]
    if not NAME_RE.match(name):
        return [
            f"{name!r} is not a valid name: use lower-case letters, digits and '-', "
            "starting and ending with a letter or digit"
        ]
    if name in ALWAYS_RESERVED_NAMES or name in policy.namespaces.reserved_names:
        return [f"{name!r} is reserved; pick another name"]
    for prefix in (*ALWAYS_RESERVED_PREFIXES, *policy.namespaces.reserved_prefixes):
        if name.startswith(prefix):
            return [f"names starting with {prefix!r} are reserved; pick another name"]
    if name in policy.network.allow_from_namespaces:
        # Every lease's NetworkPolicy admits traffic from these namespaces: whoever held one
        # could reach every other lease.
        return [
            f"{name!r} is reserved: the policy's network.allow_from_namespaces lets it reach every "
            "lease namespace; pick another name"
        ]
    if name in live_namespaces:
        return [f"{name!r} is already leased; pick another name or wait until it is released"]
    return []


def evaluate(policy: Policy, request: Request, usage: Usage) -> Evaluation:
    """Check a request against the policy and decide whether it needs a human approver."""
    errors: list[FieldError] = [
        FieldError("namespace", m)
        for m in namespace_errors(policy, request.namespace, live_namespaces=usage.live_namespaces)
    ]
    tier = next((t for t in policy.tiers if t.name == request.tier), None)
    team = next((t for t in policy.teams if t.name == request.team), None)
    duration = request.duration
    if tier is None:
        known = ", ".join(t.name for t in policy.tiers)
        errors.append(FieldError("tier", f"unknown tier {request.tier!r}; choose one of {known}"))
    else:
        duration = duration if duration is not None else tier.default_duration
        errors += _size_errors(tier.max_units, tier.max_duration, request.units, duration, tier.name)
    if team is None:
        errors.append(FieldError("team", f"unknown team {request.team!r}"))
    elif team not in teams_of(policy, user=request.requester, groups=request.requester_groups):
        errors.append(FieldError("team", f"you are not a member of team {team.name}"))
    elif tier is not None and request.units >= 1:
        errors += _quota_errors(policy, team, request, usage)
    limit = policy.limits.max_live_leases_per_user
    if usage.user_live_leases >= limit:
        errors.append(
            FieldError(
                "requester",
                f"you already hold {usage.user_live_leases} live leases, the most allowed is "
                f"{limit}; release one first",
            )
        )
    rule = None
    if not errors and tier is not None and team is not None and duration is not None:
        rule = _matching_rule(policy, team, request, duration, usage)
    return Evaluation(
        allowed=not errors,
        errors=tuple(errors),
        approval="auto" if rule else "required",
        rule=rule.name if rule else None,
        duration=duration,
    )


def _size_errors(
    max_units: int, max_duration: timedelta, units: int, duration: timedelta, tier: str
) -> list[FieldError]:
    errors = []
    if units < 1:
        errors.append(FieldError("units", "ask for at least 1 unit"))
    elif units > max_units:
        errors.append(FieldError("units", f"tier {tier} allows at most {max_units} units per lease"))
    if duration <= timedelta(0):
        errors.append(FieldError("duration", "the duration must be positive"))
    elif duration > max_duration:
        errors.append(
            FieldError(
                "duration",
                f"{format_duration(duration)} is longer than tier {tier} allows "
                f"({format_duration(max_duration)}); ask for less and extend later",
            )
        )
    return errors


def _quota_errors(policy: Policy, team: Team, request: Request, usage: Usage) -> list[FieldError]:
    errors = []
    quota = team.quota.tiers.get(request.tier)
    used = usage.team_units.get(request.tier, 0)
    if quota is None or quota == 0:
        errors.append(FieldError("tier", f"team {team.name} has no quota for tier {request.tier}"))
    elif used + request.units > quota:
        errors.append(
            FieldError(
                "units",
                f"team {team.name} uses {used} of its {quota} {request.tier} units; "
                f"{request.units} more would exceed the quota (at most {max(quota - used, 0)} left)",
            )
        )
    total = team.quota.total_gpus
    if total is not None and not errors:
        held = sum(
            gpu_equivalents(policy.tier(name), units)
            for name, units in usage.team_units.items()
            if units and any(t.name == name for t in policy.tiers)
        )
        asked = gpu_equivalents(policy.tier(request.tier), request.units)
        if held + asked > total + 1e-9:
            errors.append(
                FieldError(
                    "units",
                    f"team {team.name} holds {held:.2f} of its {total:g} GPUs in total; this "
                    f"request adds {asked:.2f} and would exceed the total quota",
                )
            )
    return errors


def _matching_rule(
    policy: Policy, team: Team, request: Request, duration: timedelta, usage: Usage
) -> AutoApprovalRule | None:
    for rule in policy.approvals.auto_approve:
        if rule.tiers is not None and request.tier not in rule.tiers:
            continue
        if rule.teams is not None and team.name not in rule.teams:
            continue
        if rule.max_units is not None and request.units > rule.max_units:
            continue
        if rule.max_duration is not None and duration > rule.max_duration:
            continue
        if rule.team_below_percent is not None:
            quota = team.quota.tiers.get(request.tier, 0)
            after = usage.team_units.get(request.tier, 0) + request.units
            if quota <= 0 or 100.0 * after / quota >= rule.team_below_percent:
                continue
        return rule
    return None


@dataclass(frozen=True)
class ExtensionVerdict:
    """Whether an extension is self-service, needs approval, or is refused."""

    outcome: Literal["self-service", "approval-required", "refused"]
    message: str


def evaluate_extension(
    policy: Policy,
    *,
    extensions_so_far: int,
    active_for: timedelta,
    remaining: timedelta,
    extra: timedelta,
) -> ExtensionVerdict:
    """Decide whether extending a lease by `extra` is within the policy's self-service caps."""
    if extra <= timedelta(0):
        return ExtensionVerdict("refused", "extend by a positive duration, e.g. 1d")
    caps = policy.expiry.extensions
    total = active_for + remaining + extra
    if extensions_so_far >= caps.max_extensions:
        return ExtensionVerdict(
            "approval-required",
            f"the lease was extended {extensions_so_far} times already (self-service limit "
            f"{caps.max_extensions}); an approver has to agree",
        )
    if total > caps.max_total_duration:
        return ExtensionVerdict(
            "approval-required",
            f"the lease would run {format_duration(total)} in all, past the self-service cap of "
            f"{format_duration(caps.max_total_duration)}; an approver has to agree",
        )
    return ExtensionVerdict("self-service", f"extended by {format_duration(extra)}")
