"""The policy file: tiers, teams and quotas, approvals, expiry, identity, pinning, clusters.

A typed schema (pydantic) for the YAML file named by GPULEASE_POLICY_FILE, and its loader.
Checks that need only the file itself live here (unknown fields, references between
sections, durations); checks against the GPU catalog live in leases.tiers. Imports nothing
else of gpulease.
"""

from __future__ import annotations

import difflib
import math
import re
import string
from datetime import timedelta
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
    field_validator,
    model_validator,
)

from config.durations import format_duration, parse_duration
from config.quantity import check_quantity

Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str),
]
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")


def _dns_label(value: str) -> str:
    # In words, not as pydantic's pattern: a regex in the message is hard to read.
    if len(value) > 63 or not _DNS_LABEL.fullmatch(value):
        raise ValueError(
            f"{value!r} must be a DNS label: lower-case letters, digits and '-', starting and ending "
            "with a letter or digit, at most 63 characters (e.g. ml-research)"
        )
    return value


def _quantity_text(value: Any) -> Any:
    # YAML reads `cpu: 4` as an int and `cpu: 0.5` as a float: both are quantities as written.
    if isinstance(value, bool):
        raise ValueError(f"{str(value).lower()} is not a quantity (use forms like 4, 500m, 24Gi)")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{value} is not a quantity (use forms like 4, 500m, 24Gi)")
        return format(Decimal(repr(value)), "f")  # positional: 1e-05 → 0.00001
    return value


Name = Annotated[str, AfterValidator(_dns_label)]
# Checked with the renderer's own parser, so a policy that loads never fails to render.
Quantity = Annotated[str, BeforeValidator(_quantity_text), AfterValidator(check_quantity)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TierMode(StrEnum):
    MIG = "mig"
    TIMESLICE = "timeslice"
    FULL = "full"


class PinningMechanism(StrEnum):
    NODE_SELECTOR_ANNOTATIONS = "node-selector-annotations"
    MUTATING_ADMISSION_POLICY = "mutating-admission-policy"


class PerUnit(_Strict):
    """What one unit of a tier brings to the namespace's quota besides the GPU share."""

    cpu: Quantity = "4"
    memory: Quantity = "16Gi"
    pods: int = Field(10, ge=1)


class Principals(_Strict):
    """Slack user ids and Slack user groups (subteam ids)."""

    users: list[str] = Field(default_factory=list)
    usergroups: list[str] = Field(default_factory=list)

    def is_empty(self) -> bool:
        return not self.users and not self.usergroups


class Tier(_Strict):
    """What a user picks: a GPU model and how one `nvidia.com/gpu` is cut from it."""

    name: Name
    display: str = Field(min_length=1, max_length=150)
    gpu_model: str
    mode: TierMode
    mig_profile: str | None = None
    replicas: int | None = Field(None, ge=2, le=64)
    node_config: str | None = Field(
        None,
        description="mig-parted config name (mig) or device-plugin config key (timeslice); "
        "derived when omitted",
    )
    per_unit: PerUnit = Field(default_factory=PerUnit)
    max_units: int = Field(4, ge=1)
    default_duration: Duration = timedelta(days=3)
    max_duration: Duration = timedelta(days=14)
    approvers: Principals | None = None
    fallback: list[str] = Field(default_factory=list)
    priority: int = 0

    @model_validator(mode="after")
    def _mode_fields(self) -> Tier:
        if self.mode is TierMode.MIG and not self.mig_profile:
            raise ValueError("mode 'mig' needs mig_profile (e.g. 1g.10gb)")
        if self.mode is not TierMode.MIG and self.mig_profile:
            raise ValueError(f"mig_profile is only for mode 'mig', not '{self.mode}'")
        if self.mode is TierMode.TIMESLICE and self.replicas is None:
            raise ValueError("mode 'timeslice' needs replicas (2 or more)")
        if self.mode is not TierMode.TIMESLICE and self.replicas is not None:
            raise ValueError(f"replicas is only for mode 'timeslice', not '{self.mode}'")
        if self.default_duration > self.max_duration:
            raise ValueError(
                f"default_duration {format_duration(self.default_duration)} is longer than "
                f"max_duration {format_duration(self.max_duration)}"
            )
        if self.default_duration <= timedelta(0):
            raise ValueError("default_duration must be positive")
        return self


class Quota(_Strict):
    """A team's GPU quota: units per tier, and a total in whole-GPU equivalents."""

    tiers: dict[str, int] = Field(default_factory=dict)
    total_gpus: float | None = Field(
        None, ge=0, description="Sum over tiers of units / units per GPU; None = no total cap"
    )

    @field_validator("tiers")
    @classmethod
    def _non_negative(cls, value: dict[str, int]) -> dict[str, int]:
        for tier, units in value.items():
            if units < 0:
                raise ValueError(f"quota for tier {tier} must not be negative")
        return value


class Team(_Strict):
    name: Name
    members: list[str] = Field(default_factory=list, description="Slack user ids")
    slack_usergroup: str | None = None
    quota: Quota = Field(default_factory=Quota)

    @model_validator(mode="after")
    def _has_members(self) -> Team:
        if not self.members and not self.slack_usergroup:
            raise ValueError("a team needs members (Slack user ids) or a slack_usergroup")
        return self


class Limits(_Strict):
    max_live_leases_per_user: int = Field(3, ge=1)


class Namespaces(_Strict):
    reserved_names: list[str] = Field(default_factory=list)
    reserved_prefixes: list[str] = Field(default_factory=list)
    pod_security: Literal["privileged", "baseline", "restricted"] | None = Field(
        "baseline",
        description="Pod Security Standard lease namespaces enforce (None: no label, the cluster's default)",
    )


class AutoApprovalRule(_Strict):
    """Approve without a human when every condition given here holds."""

    name: str = Field(min_length=1)
    tiers: list[str] | None = Field(None, description="tier in this list (None: any tier)")
    max_units: int | None = Field(None, ge=1)
    max_duration: Duration | None = None
    team_below_percent: float | None = Field(
        None, gt=0, le=100, description="team's use of its tier quota, after this request, below X%"
    )
    teams: list[str] | None = None


class Approvals(_Strict):
    approvers: Principals = Field(default_factory=Principals)
    channel: str | None = Field(None, description="Slack channel id for approval cards")
    timeout: Duration = timedelta(hours=24)
    auto_approve: list[AutoApprovalRule] = Field(default_factory=list)

    @field_validator("timeout")
    @classmethod
    def _positive_timeout(cls, value: timedelta) -> timedelta:
        # A zero timeout would expire every request in the sweep after it was made.
        return _positive(value, example="24h")


class Extensions(_Strict):
    max_extensions: int = Field(2, ge=0)
    max_total_duration: Duration = Field(
        timedelta(days=30), description="start to expiry, extensions included; past it: re-approval"
    )


class Expiry(_Strict):
    warnings: list[Duration] = Field(default_factory=lambda: [timedelta(hours=24), timedelta(hours=1)])
    extensions: Extensions = Field(default_factory=Extensions)
    idle_threshold_percent: float = Field(5.0, ge=0, le=100)
    idle_after: Duration | None = Field(None, description="reclaim after idle this long; None: off")

    @field_validator("warnings")
    @classmethod
    def _positive_sorted(cls, value: list[timedelta]) -> list[timedelta]:
        if any(w <= timedelta(0) for w in value):
            raise ValueError("warning offsets must be positive (time before expiry)")
        return sorted(set(value), reverse=True)

    @field_validator("idle_after")
    @classmethod
    def _positive_idle(cls, value: timedelta | None) -> timedelta | None:
        # Zero would reclaim every lease at its first sweep; null is how idle reclamation is off.
        if value is None:
            return None
        return _positive(value, example="12h (or null: no idle reclamation)")


class Identity(_Strict):
    """How a Slack user becomes a Kubernetes RBAC subject in the lease's RoleBinding."""

    subject_kind: Literal["User", "Group"] = "User"
    name_template: str = Field(
        "oidc:{email}", description="placeholders: {email}, {username}, {slack_user}, {team}"
    )
    cluster_role: str = "edit"

    @field_validator("cluster_role")
    @classmethod
    def _role_named(cls, value: str) -> str:
        if not value.strip():
            raise ValueError(
                f"{value!r} is empty; expected the name of the ClusterRole bound in each lease's namespace, "
                "e.g. edit"
            )
        return value

    @field_validator("name_template")
    @classmethod
    def _placeholders(cls, value: str) -> str:
        allowed = sorted(_TEMPLATE_SAMPLE)
        try:
            fields = [(f, spec, conv) for _, f, spec, conv in string.Formatter().parse(value) if f is not None]
        except ValueError as exc:
            raise ValueError(f"{value!r} is not a template ({exc}); write {{{{ and }}}} for literal braces") from None
        for field, spec, conversion in fields:
            if field not in _TEMPLATE_SAMPLE:
                name = "an empty placeholder {}" if not field else f"unknown placeholder {{{field}}}"
                raise ValueError(f"{name}; use {', '.join('{' + a + '}' for a in allowed)}")
            if conversion or spec:
                written = "{" + field + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
                raise ValueError(f"{written}: placeholders take no conversion or format spec; write {{{field}}}")
        try:
            # Every check above passed, so this should too; it is what provisioning will do.
            value.format(**_TEMPLATE_SAMPLE)
        except (ValueError, KeyError, IndexError, AttributeError) as exc:
            raise ValueError(f"{value!r} cannot be filled in: {exc}") from None
        return value


# What identity.name_template may use, with the sample values it is tried with at load.
_TEMPLATE_SAMPLE = {
    "email": "alice@example.com", "username": "alice", "slack_user": "U0ALICE", "team": "ml-research",
}


class Network(_Strict):
    allow_from_namespaces: list[str] = Field(default_factory=lambda: ["kube-system"])


class Placement(_Strict):
    """How elastic pools decide which node serves which tier (leases.rebalance)."""

    pricing: bool = Field(
        True, description="price node moves and drains by the demand learned from recent requests"
    )
    demand_half_life: Duration = Field(
        timedelta(hours=24), description="how fast older requests stop counting in the demand estimate"
    )
    demand_shift_half_life: Duration | None = Field(
        timedelta(hours=4),
        description="a tier whose requests over this shorter half-life stray from the estimate "
        "follows them alone (a change of mix); null: never",
    )
    demand_warmup: Duration = Field(
        timedelta(hours=4), description="requests seen before the estimate is trusted"
    )
    demand_min_requests: int = Field(
        30, ge=0, description="requests seen (within the window) before the estimate is trusted"
    )
    move_margin: float = Field(0.1, ge=0, description="a move must gain this much more than it costs")
    drain_margin: float = Field(0.5, ge=0, description="a drain must gain this much more than it costs")
    rebalance: bool = Field(True, description="move idle nodes to where demand is, on every sweep")
    fallback_share: float = Field(
        0.0, ge=0, le=1, description="share of requesters expected to take an offered fallback tier"
    )
    priced_wait: Duration = Field(
        timedelta(hours=4),
        description="a request waiting longer than this may have any spare node, whatever the prices",
    )
    drain_timeout: Duration = Field(
        timedelta(days=3),
        description="a drained node still running GPU pods after this goes back to its pool",
    )
    max_wait: Duration | None = Field(
        None,
        description="a lease still waitlisted this long after approval is cancelled (none: it waits until placed or cancelled)",
    )
    failed_move_pause: Duration = Field(
        timedelta(hours=1),
        description="after a reconfiguration to a tier fails, no node moves or drains toward it for this long",
    )

    @field_validator("demand_half_life", "demand_shift_half_life")
    @classmethod
    def _positive(cls, value: timedelta | None) -> timedelta | None:
        if value is not None and value <= timedelta(0):
            raise ValueError("the half-life must be positive")
        return value

    @field_validator("drain_timeout")
    @classmethod
    def _positive_timeout(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("the drain timeout must be positive")
        return value

    @field_validator("max_wait")
    @classmethod
    def _positive_wait(cls, value: timedelta | None) -> timedelta | None:
        if value is not None and value <= timedelta(0):
            raise ValueError("the longest wait must be positive (leave it out to wait without limit)")
        return value

    @model_validator(mode="after")
    def _shift_is_shorter(self) -> Placement:
        shift = self.demand_shift_half_life
        if shift is None or shift < self.demand_half_life:
            return self
        if "demand_shift_half_life" in self.model_fields_set:
            raise ValueError(
                f"demand_shift_half_life ({format_duration(shift)}) must be shorter than "
                f"demand_half_life ({format_duration(self.demand_half_life)})"
            )
        # The default, under a half-life set as short or shorter: nothing shorter to follow.
        object.__setattr__(self, "demand_shift_half_life", None)
        return self


class Cluster(_Strict):
    name: Name
    context: str | None = Field(None, description="kubeconfig context")
    api_url: str | None = Field(None, description="API server URL")
    pinning: PinningMechanism | None = Field(None, description="overrides the policy default")
    max_moves_in_flight: int = Field(1, ge=0)


class Policy(_Strict):
    version: Literal[1] = 1
    tiers: list[Tier] = Field(min_length=1)
    teams: list[Team] = Field(min_length=1)
    limits: Limits = Field(default_factory=Limits)
    namespaces: Namespaces = Field(default_factory=Namespaces)
    approvals: Approvals = Field(default_factory=Approvals)
    admins: Principals = Field(default_factory=Principals)
    expiry: Expiry = Field(default_factory=Expiry)
    identity: Identity = Field(default_factory=Identity)
    network: Network = Field(default_factory=Network)
    placement: Placement = Field(default_factory=Placement)
    pinning: PinningMechanism = PinningMechanism.NODE_SELECTOR_ANNOTATIONS
    clusters: list[Cluster] = Field(min_length=1)

    @model_validator(mode="after")
    def _references(self) -> Policy:
        tiers = [t.name for t in self.tiers]
        _unique("tiers", tiers)
        _unique("teams", [t.name for t in self.teams])
        _unique("clusters", [c.name for c in self.clusters])
        known = set(tiers)
        for i, tier in enumerate(self.tiers):
            for j, fb in enumerate(tier.fallback):
                _known(f"tiers[{i}].fallback[{j}]", fb, known)
                if fb == tier.name:
                    raise _PathError(f"tiers[{i}].fallback[{j}]", "a tier cannot fall back to itself")
        for i, team in enumerate(self.teams):
            for tier in team.quota.tiers:
                _known(f"teams[{i}].quota.tiers.{tier}", tier, known)
        for i, rule in enumerate(self.approvals.auto_approve):
            for j, tier in enumerate(rule.tiers or []):
                _known(f"approvals.auto_approve[{i}].tiers[{j}]", tier, known)
            for j, team in enumerate(rule.teams or []):
                _known(f"approvals.auto_approve[{i}].teams[{j}]", team, {t.name for t in self.teams})
        nobody = self.approvals.approvers.is_empty() and not any(t.approvers for t in self.tiers)
        if nobody:
            # Auto-approval rules never cover an extension past expiry.extensions' caps.
            raise _PathError(
                "approvals.approvers",
                f"no approvers here or on any tier, but {_needs_a_human(self)}; nobody could approve it: "
                "name at least one user or group",
            )
        channel = self.approvals.channel
        if not channel:
            # Some request can always need a human; its card would have nowhere to go.
            shown = "null" if channel is None else repr(channel)
            raise _PathError(
                "approvals.channel",
                f"{shown}, but {_needs_a_human(self)}, and approval cards are posted in this channel; "
                "expected a Slack channel id, e.g. C0123ABCD",
            )
        return self

    def tier(self, name: str) -> Tier:
        """Return the tier called `name` (KeyError naming the known tiers otherwise)."""
        for tier in self.tiers:
            if tier.name == name:
                return tier
        raise KeyError(f"unknown tier {name!r}; known tiers: {', '.join(t.name for t in self.tiers)}")

    def team(self, name: str) -> Team:
        """Return the team called `name` (KeyError naming the known teams otherwise)."""
        for team in self.teams:
            if team.name == name:
                return team
        raise KeyError(f"unknown team {name!r}; known teams: {', '.join(t.name for t in self.teams)}")

    def cluster(self, name: str | None = None) -> Cluster:
        """Return the named cluster, or the first one."""
        if name is None:
            return self.clusters[0]
        for cluster in self.clusters:
            if cluster.name == name:
                return cluster
        raise KeyError(f"unknown cluster {name!r}; known clusters: {', '.join(c.name for c in self.clusters)}")

    def pinning_for(self, cluster: str | None = None) -> PinningMechanism:
        """Return the pinning mechanism used on a cluster."""
        return self.cluster(cluster).pinning or self.pinning

    def approvers_for(self, tier: str) -> Principals:
        """Return who may approve requests for a tier (the tier's own list, else the global)."""
        return self.tier(tier).approvers or self.approvals.approvers


class _PathError(ValueError):
    """A cross-reference error that knows the path of the field it is about."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(message)
        self.path = path
        self.message = message


def _positive(value: timedelta, *, example: str) -> timedelta:
    if value <= timedelta(0):
        raise ValueError(f"{format_duration(value)} is not positive; expected a duration above zero, e.g. {example}")
    return value


def _needs_a_human(policy: Policy) -> str:
    """Say which request needs a human approver (some always can: extensions past the caps)."""
    for tier in policy.tiers:
        for team in policy.teams:
            units = min(tier.max_units, team.quota.tiers.get(tier.name, 0))
            if units and not any(_covers(rule, tier, team.name, units) for rule in policy.approvals.auto_approve):
                return (
                    f"a request by team {team.name} for {units} units of tier {tier.name} for "
                    f"{format_duration(tier.max_duration)} matches no auto-approval rule"
                )
    caps = policy.expiry.extensions
    return (
        f"an extension past the self-service caps of expiry.extensions (after {caps.max_extensions} "
        f"extensions, or beyond {format_duration(caps.max_total_duration)} in all) needs an approver"
    )


def _covers(rule: AutoApprovalRule, tier: Tier, team: str, units: int) -> bool:
    # The largest request allowed of a tier (every smaller one falls under the same rule); a
    # team-usage condition never covers it, since the request may fill the quota.
    return (
        (rule.tiers is None or tier.name in rule.tiers)
        and (rule.teams is None or team in rule.teams)
        and (rule.max_units is None or rule.max_units >= units)
        and (rule.max_duration is None or rule.max_duration >= tier.max_duration)
        and rule.team_below_percent is None
    )


def _unique(section: str, names: list[str]) -> None:
    seen: set[str] = set()
    for i, name in enumerate(names):
        if name in seen:
            raise _PathError(f"{section}[{i}].name", f"duplicate name {name!r}")
        seen.add(name)


def _known(path: str, name: str, known: set[str]) -> None:
    if name not in known:
        hint = difflib.get_close_matches(name, sorted(known), n=1)
        extra = f" (did you mean {hint[0]!r}?)" if hint else f"; known: {', '.join(sorted(known))}"
        raise _PathError(path, f"unknown name {name!r}{extra}")


class PolicyIssue(BaseModel):
    """One problem in a policy file: where (dotted path) and why."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class PolicyError(Exception):
    """The policy file is unusable; lists every problem with its field path."""

    def __init__(self, file: str | Path, issues: list[PolicyIssue]) -> None:
        self.file = str(file)
        self.issues = issues
        lines = "\n".join(f"  - {issue}" for issue in issues)
        super().__init__(f"policy file {self.file} is invalid:\n{lines}")


def _loc_to_path(loc: tuple[Any, ...]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path


def _issues_from(exc: ValidationError, raw: Any) -> list[PolicyIssue]:
    issues = []
    for err in exc.errors():
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        ctx = err.get("ctx") or {}
        original = ctx.get("error")
        if isinstance(original, _PathError):
            issues.append(PolicyIssue(path=original.path, message=original.message))
            continue
        path = _loc_to_path(loc)
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            message = "unknown field" + _suggest_field(loc, raw)
        elif err["type"] == "missing":
            message = "required field is missing"
        issues.append(PolicyIssue(path=path, message=message))
    return issues


def _suggest_field(loc: tuple[Any, ...], raw: Any) -> str:
    """Suggest the field a misspelt key probably meant, from the schema at that place."""
    model: Any = Policy
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        field = getattr(model, "model_fields", {}).get(part)
        if field is None:
            return ""
        model = _model_of(field.annotation)
        if model is None:
            return ""
    names = list(getattr(model, "model_fields", {}))
    hint = difflib.get_close_matches(str(loc[-1]), names, n=1)
    return f" (did you mean {hint[0]!r}?)" if hint else f"; allowed here: {', '.join(names)}"


def _model_of(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_of(arg)
        if found is not None:
            return found
    return None


def parse_policy(data: Any, *, source: str | Path = "<policy>") -> Policy:
    """Validate already-parsed policy data; PolicyError lists every bad field."""
    if not isinstance(data, dict):
        raise PolicyError(source, [PolicyIssue(path="", message="the file must hold a YAML mapping")])
    try:
        return Policy.model_validate(data)
    except ValidationError as exc:
        raise PolicyError(source, _issues_from(exc, data)) from None


def load_policy(path: str | Path) -> Policy:
    """Read and validate a policy YAML file; PolicyError names the file, field and reason."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyError(path, [PolicyIssue(path="", message=f"cannot read: {exc.strerror}")]) from None
    except UnicodeDecodeError as exc:
        raise PolicyError(
            path,
            [
                PolicyIssue(
                    path="",
                    message=f"not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start}); "
                    "save the file as UTF-8",
                )
            ],
        ) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise PolicyError(path, [PolicyIssue(path="", message=f"not valid YAML: {where}{problem}")]) from None
    return parse_policy(data, source=path)
