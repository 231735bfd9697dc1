"""The policy file schema: the example loads, and bad files fail naming file, field and reason."""

from __future__ import annotations

import copy
from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from config.policy import PinningMechanism, PolicyError, load_policy, parse_policy
from config.settings import EXAMPLE_POLICY

RAW = yaml.safe_load(EXAMPLE_POLICY.read_text())


def raw() -> dict:
    return copy.deepcopy(RAW)


def issues_of(data: dict) -> list[str]:
    with pytest.raises(PolicyError) as err:
        parse_policy(data, source="p.yaml")
    assert "p.yaml" in str(err.value)
    return [str(i) for i in err.value.issues]


def test_example_policy_loads_with_every_section():
    policy = load_policy(EXAMPLE_POLICY)
    assert [t.name for t in policy.tiers] == [
        "h100-1g", "h100-3g", "h100-full", "h100-shared", "l40s-shared",
    ]
    assert policy.tier("h100-1g").max_duration == timedelta(days=14)
    assert policy.team("ml-research").quota.tiers["h100-1g"] == 14
    assert policy.expiry.warnings == [timedelta(hours=24), timedelta(hours=1)]
    assert policy.approvals.auto_approve[0].max_duration == timedelta(days=1)
    assert policy.pinning_for("sandbox") is PinningMechanism.NODE_SELECTOR_ANNOTATIONS
    assert policy.approvers_for("h100-full").users == ["U0APPROVER2"]
    assert policy.approvers_for("h100-1g").usergroups == ["S0GPUAPPROVERS"]


def test_misspelt_field_names_path_and_suggests():
    data = raw()
    data["tiers"][1]["gpu_modle"] = data["tiers"][1].pop("gpu_model")
    found = issues_of(data)
    assert any(i.startswith("tiers[1].gpu_modle: unknown field (did you mean 'gpu_model'?)") for i in found)
    assert any(i.startswith("tiers[1].gpu_model: required field is missing") for i in found)


def test_misspelt_top_level_section():
    data = raw()
    data["approval"] = data.pop("approvals")
    found = issues_of(data)
    assert any("approval: unknown field (did you mean 'approvals'?)" in i for i in found)


def test_mig_tier_needs_profile_and_timeslice_needs_replicas():
    data = raw()
    del data["tiers"][0]["mig_profile"]
    del data["tiers"][3]["replicas"]
    found = issues_of(data)
    assert "tiers[0]: mode 'mig' needs mig_profile (e.g. 1g.10gb)" in found
    assert "tiers[3]: mode 'timeslice' needs replicas (2 or more)" in found


def test_replicas_below_two_refused():
    data = raw()
    data["tiers"][3]["replicas"] = 1
    assert any(i.startswith("tiers[3].replicas:") for i in issues_of(data))


def test_bad_duration_names_field():
    data = raw()
    data["tiers"][0]["max_duration"] = "two weeks"
    found = issues_of(data)
    assert any(i.startswith("tiers[0].max_duration: not a duration: 'two weeks'") for i in found)


def test_default_longer_than_max_refused():
    data = raw()
    data["tiers"][0]["default_duration"] = "20d"
    assert any("default_duration 2w6d is longer than max_duration 2w" in i for i in issues_of(data))


def test_quota_for_unknown_tier_names_the_key():
    data = raw()
    data["teams"][0]["quota"]["tiers"]["h100-2g"] = 3
    found = issues_of(data)
    assert any(i.startswith("teams[0].quota.tiers.h100-2g: unknown name 'h100-2g'") for i in found)


def test_auto_approve_rule_unknown_tier_suggests():
    data = raw()
    data["approvals"]["auto_approve"][0]["tiers"] = ["h100-1G"]
    found = issues_of(data)
    assert "approvals.auto_approve[0].tiers[0]: unknown name 'h100-1G' (did you mean 'h100-1g'?)" in found


def test_duplicate_tier_names_refused():
    data = raw()
    data["tiers"][1]["name"] = "h100-1g"
    assert "tiers[1].name: duplicate name 'h100-1g'" in issues_of(data)


def test_team_without_members_refused():
    data = raw()
    data["teams"][1]["members"] = []
    assert any(i.startswith("teams[1]: a team needs members") for i in issues_of(data))


def test_unknown_identity_placeholder_refused():
    data = raw()
    data["identity"]["name_template"] = "oidc:{mail}"
    assert any(i.startswith("identity.name_template: unknown placeholder {mail}") for i in issues_of(data))


def test_unknown_pinning_mechanism_refused():
    data = raw()
    data["pinning"] = "kyverno"
    assert any(i.startswith("pinning:") for i in issues_of(data))


def test_nobody_can_approve_refused():
    data = raw()
    data["approvals"]["approvers"] = {"users": [], "usergroups": []}
    data["approvals"]["auto_approve"] = []
    data["tiers"][2].pop("approvers")
    assert any(i.startswith("approvals.approvers: no approvers") for i in issues_of(data))


def test_not_yaml_and_missing_file(tmp_path: Path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("tiers: [\n")
    with pytest.raises(PolicyError) as err:
        load_policy(bad)
    assert str(bad) in str(err.value) and "not valid YAML: line" in str(err.value)
    with pytest.raises(PolicyError) as err:
        load_policy(tmp_path / "missing.yaml")
    assert "cannot read" in str(err.value)


def test_not_a_mapping():
    with pytest.raises(PolicyError) as err:
        parse_policy(["a"], source="x.yaml")
    assert "the file must hold a YAML mapping" in str(err.value)


def test_warning_offsets_sorted_descending_and_deduplicated():
    data = raw()
    data["expiry"]["warnings"] = ["1h", "24h", "1h", "30m"]
    policy = parse_policy(data)
    assert policy.expiry.warnings == [timedelta(hours=24), timedelta(hours=1), timedelta(minutes=30)]


def test_policy_lookups_name_known_values():
    policy = parse_policy(raw())
    with pytest.raises(KeyError, match="known tiers: h100-1g"):
        policy.tier("nope")
    with pytest.raises(KeyError, match="known teams: ml-research, vision"):
        policy.team("nope")


def test_placement_section_defaults_and_errors():
    policy = load_policy(EXAMPLE_POLICY)
    assert policy.placement.pricing and policy.placement.rebalance
    assert policy.placement.demand_half_life == timedelta(hours=24)
    assert policy.placement.demand_shift_half_life == timedelta(hours=4)
    data = raw()
    assert policy.placement.drain_timeout == timedelta(days=3)
    assert policy.placement.failed_move_pause == timedelta(hours=1)
    data["placement"] = {"demand_half_life": "0s", "drain_margin": -1, "pricng": False, "drain_timeout": "0s"}
    found = issues_of(data)
    assert any(i.startswith("placement.demand_half_life: ") and "half-life must be positive" in i for i in found)
    assert any(i.startswith("placement.drain_timeout: ") and "drain timeout must be positive" in i for i in found)
    data = raw()
    data["placement"] = {"max_wait": "0s"}
    assert any(i.startswith("placement.max_wait: ") and "longest wait must be positive" in i for i in issues_of(data))
    assert policy.placement.max_wait is None
    assert any(i.startswith("placement.drain_margin: ") for i in found)
    assert any("placement.pricng: unknown field (did you mean 'pricing'?)" in i for i in found)
    data = raw()
    data["placement"] = {"demand_half_life": "2h", "rebalance": False, "failed_move_pause": "0s"}
    parsed = parse_policy(data)
    assert parsed.placement.demand_half_life == timedelta(hours=2) and not parsed.placement.rebalance
    assert parsed.placement.failed_move_pause == timedelta(0)  # no pause
    # The default shift half-life is no shorter than 2h: there is nothing shorter to follow.
    assert parsed.placement.demand_shift_half_life is None
    data["placement"] = {"demand_half_life": "2h", "demand_shift_half_life": "3h"}
    assert any(
        i.startswith("placement: ") and "demand_shift_half_life (3h) must be shorter than demand_half_life (2h)" in i
        for i in issues_of(data)
    )
    data["placement"] = {"demand_shift_half_life": None}
    assert parse_policy(data).placement.demand_shift_half_life is None
