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


@pytest.mark.parametrize(("template", "says"), [
    ("oidc:{}", "an empty placeholder {}"),
    ("oidc:{email!x}", "{email!x}: placeholders take no conversion or format spec; write {email}"),
    ("oidc:{email!r}", "{email!r}: placeholders take no conversion or format spec"),
    ("oidc:{email:d}", "{email:d}: placeholders take no conversion or format spec; write {email}"),
    ("oidc:{email:>40}", "{email:>40}: placeholders take no conversion or format spec"),
    ("oidc:{0}", "unknown placeholder {0}"),
    ("oidc:{email.upper}", "unknown placeholder {email.upper}"),
    ("oidc:{email", "'oidc:{email' is not a template"),
    ("oidc:}", "'oidc:}' is not a template"),
])
def test_identity_template_that_provisioning_could_not_fill_is_refused(template, says):
    data = raw()
    data["identity"]["name_template"] = template
    assert any(i.startswith(f"identity.name_template: {says}") for i in issues_of(data)), issues_of(data)


def test_identity_template_with_every_placeholder_and_literal_braces_loads():
    data = raw()
    data["identity"]["name_template"] = "{{gl}}:{team}:{username}:{slack_user}:{email}"
    assert parse_policy(data).identity.name_template.format(
        email="a@b.c", username="a", slack_user="U1", team="t") == "{gl}:t:a:U1:a@b.c"


@pytest.mark.parametrize(("value", "read_as"), [(4, "4"), (0.5, "0.5"), (2.0, "2.0"), ("500m", "500m"), (1e-3, "0.001")])
def test_unquoted_numbers_are_quantities(value, read_as):
    data = raw()
    data["tiers"][0]["per_unit"]["cpu"] = value
    data["tiers"][0]["per_unit"]["memory"] = 17179869184 if isinstance(value, int) else "16Gi"
    tier = parse_policy(data).tiers[0]
    assert tier.per_unit.cpu == read_as
    assert tier.per_unit.memory in ("17179869184", "16Gi")


def test_unquoted_numbers_from_the_yaml_file_load(tmp_path: Path):
    text = EXAMPLE_POLICY.read_text()
    data = yaml.safe_load(text)
    data["tiers"][0]["per_unit"] = {"cpu": 4, "memory": "24Gi", "pods": 10}
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(data))
    assert "cpu: 4\n" in path.read_text()
    assert load_policy(path).tiers[0].per_unit.cpu == "4"


@pytest.mark.parametrize(("value", "says"), [
    (float("nan"), "nan is not a quantity"),
    (float("inf"), "inf is not a quantity"),
    (True, "true is not a quantity"),
    (-1, "unsupported quantity '-1'"),
])
def test_numbers_that_are_not_quantities_are_refused(value, says):
    data = raw()
    data["tiers"][0]["per_unit"]["cpu"] = value
    assert any(i.startswith(f"tiers[0].per_unit.cpu: {says}") for i in issues_of(data)), issues_of(data)


@pytest.mark.parametrize("name", ["ML-Research", "ml_research", "-ml", "ml-", "a" * 64, "[/b]"])
def test_names_that_are_not_dns_labels_are_explained_in_words(name):
    data = raw()
    data["teams"][0]["name"] = name
    [issue] = [i for i in issues_of(data) if i.startswith("teams[0].name:")]
    assert issue == (
        f"teams[0].name: {name!r} must be a DNS label: lower-case letters, digits and '-', starting and "
        "ending with a letter or digit, at most 63 characters (e.g. ml-research)"
    )


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
