"""The policy engine: validation, quotas, duration caps, auto-approval, extensions."""

from __future__ import annotations

import copy
from datetime import timedelta

import pytest
import yaml

from config.policy import PolicyError, parse_policy
from config.settings import EXAMPLE_POLICY
from leases.policy import Request, Usage, evaluate, evaluate_extension, namespace_errors, teams_of
from leases.tiers import catalog_issues, check_against_catalog, describe_unit, units_per_gpu

RAW = yaml.safe_load(EXAMPLE_POLICY.read_text())
POLICY = parse_policy(RAW)


def req(**kw) -> Request:
    base = dict(requester="U0ALICE", team="ml-research", tier="h100-1g", units=1, namespace="alice-exp")
    base.update(kw)
    return Request(**base)


def fields(evaluation) -> dict[str, str]:
    return {e.field: e.message for e in evaluation.errors}


def test_small_short_request_is_auto_approved_by_rule():
    ev = evaluate(POLICY, req(duration=timedelta(hours=12)), Usage())
    assert ev.allowed and ev.approval == "auto" and ev.rule == "small-and-short"
    assert ev.as_dict() == {"allowed": True, "errors": [], "approval": "auto", "rule": "small-and-short"}


def test_default_duration_applies_and_needs_approval_when_too_long_for_rule():
    ev = evaluate(POLICY, req(), Usage())  # tier default is 3d, the rule allows 1d
    assert ev.allowed and ev.approval == "required" and ev.rule is None
    assert ev.duration == timedelta(days=3)


def test_rule_respects_team_quota_percentage():
    ev = evaluate(POLICY, req(duration=timedelta(hours=1)), Usage(team_units={"h100-1g": 6}))
    assert ev.allowed and ev.approval == "required"  # 7 of 14 = 50%, not below 50%
    ev = evaluate(POLICY, req(duration=timedelta(hours=1)), Usage(team_units={"h100-1g": 5}))
    assert ev.approval == "auto"


def test_rule_tier_list_and_units():
    ev = evaluate(POLICY, req(tier="h100-3g", duration=timedelta(hours=1)), Usage())
    assert ev.allowed and ev.approval == "required"
    ev = evaluate(POLICY, req(units=2, duration=timedelta(hours=1)), Usage())
    assert ev.allowed and ev.approval == "required"


@pytest.mark.parametrize(
    ("name", "needle"),
    [
        ("Alice", "not a valid name"),
        ("-x", "not a valid name"),
        ("a_b", "not a valid name"),
        ("a" * 64, "at most 63"),
        ("default", "reserved"),
        ("kube-system", "'kube-' are reserved"),
        ("openshift-x", "'openshift-' are reserved"),
        ("monitoring", "reserved"),
        ("system-x", "'system-' are reserved"),
        ("", "give a namespace name"),
    ],
)
def test_invalid_namespace_names_refused(name, needle):
    ev = evaluate(POLICY, req(namespace=name), Usage())
    assert not ev.allowed
    assert needle in fields(ev)["namespace"]


def test_namespaces_admitted_into_every_lease_are_reserved():
    network = POLICY.network.model_copy(update={"allow_from_namespaces": ["kube-system", "ingress-nginx"]})
    policy = POLICY.model_copy(update={"network": network})
    assert namespace_errors(policy, "ingress-nginx", live_namespaces=frozenset()) == [
        "'ingress-nginx' is reserved: the policy's network.allow_from_namespaces lets it reach every "
        "lease namespace; pick another name"
    ]
    ev = evaluate(policy, req(namespace="ingress-nginx"), Usage())
    assert not ev.allowed and "network.allow_from_namespaces" in fields(ev)["namespace"]
    assert namespace_errors(POLICY, "ingress-nginx", live_namespaces=frozenset()) == []


def test_namespace_unique_among_live_leases():
    ev = evaluate(POLICY, req(), Usage(live_namespaces=frozenset({"alice-exp"})))
    assert "already leased" in fields(ev)["namespace"]
    assert namespace_errors(POLICY, "a" * 63, live_namespaces=frozenset()) == []


def test_over_quota_per_tier_names_units_and_what_is_left():
    ev = evaluate(POLICY, req(units=4), Usage(team_units={"h100-1g": 12}))
    assert not ev.allowed
    assert fields(ev)["units"] == (
        "team ml-research uses 12 of its 14 h100-1g units; 4 more would exceed the quota (at most 2 left)"
    )


def test_total_gpu_quota_in_gpu_equivalents():
    # vision: total 3 GPUs; 7 h100-1g units = 1 GPU, 4 l40s-shared units = 1 GPU.
    usage = Usage(team_units={"h100-1g": 7, "l40s-shared": 4, "h100-shared": 3})
    ev = evaluate(POLICY, req(requester="U0CAROL", team="vision", tier="h100-shared", units=1), usage)
    assert ev.allowed  # 1 + 1 + 0.75 + 0.25 = 3.0 exactly
    usage = Usage(team_units={"h100-1g": 7, "l40s-shared": 2, "h100-shared": 4})
    ev = evaluate(POLICY, req(requester="U0CAROL", team="vision", tier="l40s-shared", units=2), usage)
    assert ev.allowed  # 1 + 0.5 + 1 + 0.5 = 3.0
    data = copy.deepcopy(RAW)
    data["teams"][1]["quota"]["total_gpus"] = 2.6
    ev = evaluate(
        parse_policy(data), req(requester="U0CAROL", team="vision", tier="l40s-shared", units=1), usage
    )
    assert fields(ev)["units"] == (
        "team vision holds 2.50 of its 2.6 GPUs in total; this request adds 0.25 and would "
        "exceed the total quota"
    )


def test_tier_without_quota_for_team():
    ev = evaluate(POLICY, req(requester="U0CAROL", team="vision", tier="h100-full"), Usage())
    assert fields(ev)["tier"] == "team vision has no quota for tier h100-full"


def test_over_long_and_over_large_requests():
    ev = evaluate(POLICY, req(units=5, duration=timedelta(days=15)), Usage())
    f = fields(ev)
    assert f["units"] == "tier h100-1g allows at most 4 units per lease"
    assert f["duration"].startswith("2w1d is longer than tier h100-1g allows (2w)")
    ev = evaluate(POLICY, req(units=0), Usage())
    assert fields(ev)["units"] == "ask for at least 1 unit"


def test_unknown_tier_and_team_and_membership():
    assert "unknown tier 'h100-9g'" in fields(evaluate(POLICY, req(tier="h100-9g"), Usage()))["tier"]
    assert fields(evaluate(POLICY, req(team="nope"), Usage()))["team"] == "unknown team 'nope'"
    ev = evaluate(POLICY, req(requester="U0CAROL"), Usage())
    assert fields(ev)["team"] == "you are not a member of team ml-research"


def test_membership_through_slack_user_group():
    assert [t.name for t in teams_of(POLICY, user="U0ZED", groups=frozenset({"S0MLRESEARCH"}))] == [
        "ml-research"
    ]
    ev = evaluate(POLICY, req(requester="U0ZED", requester_groups=frozenset({"S0MLRESEARCH"})), Usage())
    assert ev.allowed


def test_per_user_live_lease_limit():
    ev = evaluate(POLICY, req(), Usage(user_live_leases=3))
    assert "already hold 3 live leases" in fields(ev)["requester"]


def test_every_error_reported_at_once():
    ev = evaluate(POLICY, req(namespace="Bad", units=9, duration=timedelta(days=99)), Usage())
    assert set(fields(ev)) == {"namespace", "units", "duration"}
    assert ev.approval == "required" and ev.rule is None


def test_extension_caps():
    kw = dict(active_for=timedelta(days=2), remaining=timedelta(days=1))
    assert evaluate_extension(POLICY, extensions_so_far=0, extra=timedelta(days=3), **kw).outcome == (
        "self-service"
    )
    v = evaluate_extension(POLICY, extensions_so_far=2, extra=timedelta(days=1), **kw)
    assert v.outcome == "approval-required" and "extended 2 times" in v.message
    v = evaluate_extension(POLICY, extensions_so_far=0, extra=timedelta(days=28), **kw)
    assert v.outcome == "approval-required" and "past the self-service cap of 4w2d" in v.message
    assert evaluate_extension(POLICY, extensions_so_far=0, extra=timedelta(0), **kw).outcome == "refused"


def test_units_per_gpu_and_descriptions():
    assert units_per_gpu(POLICY.tier("h100-1g")) == 7
    assert units_per_gpu(POLICY.tier("h100-3g")) == 2
    assert units_per_gpu(POLICY.tier("h100-shared")) == 4
    assert units_per_gpu(POLICY.tier("h100-full")) == 1
    assert describe_unit(POLICY.tier("h100-1g")).startswith("1/7 of an H100-80GB, 10 GB")
    assert "no memory isolation" in describe_unit(POLICY.tier("l40s-shared"))


def test_catalog_checks_name_the_field():
    data = copy.deepcopy(RAW)
    data["tiers"][0]["gpu_model"] = "H100-81GB"
    data["tiers"][1]["mig_profile"] = "3g.41gb"
    data["tiers"][4]["mode"] = "mig"
    data["tiers"][4]["mig_profile"] = "1g.10gb"
    del data["tiers"][4]["replicas"]
    issues = [str(i) for i in catalog_issues(parse_policy(data))]
    assert issues[0].startswith("tiers[0].gpu_model: unknown GPU model 'H100-81GB'; known: A30")
    assert issues[1].startswith("tiers[1].mig_profile: H100-80GB has no MIG profile '3g.41gb'")
    assert issues[2] == "tiers[4].mode: L40S has no MIG; use mode timeslice or full"
    with pytest.raises(PolicyError, match="p.yaml"):
        check_against_catalog(parse_policy(data), source="p.yaml")


def test_mig_node_config_must_carry_only_the_tier_profile():
    data = copy.deepcopy(RAW)
    data["tiers"][0]["node_config"] = "all-balanced"
    issues = [str(i) for i in catalog_issues(parse_policy(data))]
    assert issues == [
        "tiers[0].node_config: config 'all-balanced' does not create only 1g.10gb instances; "
        "a tier's nodes must carry one MIG profile (single strategy)"
    ]
    data["tiers"][0]["node_config"] = "all-1g.10gb"
    assert catalog_issues(parse_policy(data)) == []
