"""Policies that loaded but broke later are refused at load: quantities the renderer cannot
scale, no approvals channel, zero timeouts, an empty ClusterRole, huge durations, non-UTF-8."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from config.policy import PolicyError, load_policy, parse_policy
from config.settings import EXAMPLE_POLICY
from provisioners.bundle import spec_from
from provisioners.bundle.render import render
from tests.unit.config.test_policy_file import issues_of, raw


@pytest.mark.parametrize(("field", "value"), [("memory", "24 GB"), ("cpu", "4 cores"), ("memory", "16gi")])
def test_per_unit_quantities_the_renderer_cannot_scale_are_refused(field, value):
    data = raw()
    data["tiers"][0]["per_unit"][field] = value
    assert issues_of(data) == [
        f"tiers[0].per_unit.{field}: unsupported quantity {value!r} (use forms like 4, 500m, 24Gi)"
    ]


@pytest.mark.parametrize(("cpu", "memory"), [("500m", "1.5Gi"), (".5", "100M"), ("2", "64Gi")])
def test_every_quantity_the_policy_accepts_renders(cpu, memory):
    data = raw()
    data["tiers"][0]["per_unit"].update(cpu=cpu, memory=memory)
    policy = parse_policy(data)
    spec = spec_from(
        policy, lease_id="0" * 32, namespace="alice-nb", cluster="sandbox", tier=policy.tiers[0].name,
        team="ml-research", requester="U0ALICE", email="alice@example.com", units=3,
        expires_at=datetime(2026, 12, 1, tzinfo=UTC),
    )
    quota = next(o for o in render(spec) if o["kind"] == "ResourceQuota")
    assert quota["spec"]["hard"]["requests.cpu"] and quota["spec"]["hard"]["requests.memory"]


@pytest.mark.parametrize("channel", [None, ""])
def test_no_approvals_channel_is_refused_when_a_request_needs_a_human(channel):
    data = raw()
    data["approvals"]["channel"] = channel
    shown = "null" if channel is None else "''"
    (issue,) = issues_of(data)
    assert issue.startswith(f"approvals.channel: {shown}, but a request by team ml-research for 4 units of tier h100-1g")
    assert "matches no auto-approval rule" in issue and "expected a Slack channel id" in issue


def test_no_approvals_channel_is_refused_even_when_every_request_is_auto_approved():
    data = raw()
    data["approvals"]["channel"] = None
    data["approvals"]["auto_approve"] = [{"name": "everything"}]
    (issue,) = issues_of(data)
    # Extensions past the self-service caps still go to an approver, through the channel.
    assert issue.startswith("approvals.channel: null, but an extension past the self-service caps")
    assert "after 2 extensions" in issue and "expected a Slack channel id" in issue


def test_rules_with_usage_or_size_conditions_do_not_cover_every_request():
    data = raw()
    data["approvals"]["channel"] = None
    # Covers the biggest h100-1g request (4 units for 2w) of every team, but not the other tiers.
    data["approvals"]["auto_approve"] = [{"name": "all-1g", "tiers": ["h100-1g"], "max_units": 4, "max_duration": "2w"}]
    (issue,) = issues_of(data)
    assert "of tier h100-1g" not in issue and "matches no auto-approval rule" in issue


@pytest.mark.parametrize(
    ("section", "field", "example"),
    [("approvals", "timeout", "24h"), ("expiry", "idle_after", "12h")],
)
def test_zero_durations_are_refused(section, field, example):
    data = raw()
    data[section][field] = "0s"
    (issue,) = issues_of(data)
    assert issue.startswith(f"{section}.{field}: 0s is not positive; expected a duration above zero, e.g. {example}")


def test_idle_reclamation_can_still_be_off():
    data = raw()
    data["expiry"]["idle_after"] = None
    assert parse_policy(data).expiry.idle_after is None


@pytest.mark.parametrize("role", ["", "  "])
def test_empty_cluster_role_is_refused(role):
    data = raw()
    data["identity"]["cluster_role"] = role
    assert issues_of(data) == [
        f"identity.cluster_role: {role!r} is empty; expected the name of the ClusterRole bound in each "
        "lease's namespace, e.g. edit"
    ]


def test_a_huge_duration_is_an_issue_not_an_overflow():
    data = raw()
    data["approvals"]["timeout"] = "99999999999d"
    (issue,) = issues_of(data)
    assert issue.startswith("approvals.timeout: duration '99999999999d' is too long: at most 3650d")
    data = raw()
    data["approvals"]["timeout"] = float("inf")
    assert issues_of(data)[0].startswith("approvals.timeout: not a duration: inf")


def test_a_policy_file_that_is_not_utf8_says_so(tmp_path: Path):
    path = tmp_path / "policy.yaml"
    path.write_text(EXAMPLE_POLICY.read_text(), encoding="utf-16")  # with its byte-order mark
    with pytest.raises(PolicyError) as err:
        load_policy(path)
    assert str(path) in str(err.value)
    assert [str(i) for i in err.value.issues] == [
        "not UTF-8 text (byte 0xff at offset 0); save the file as UTF-8"
    ]


def test_the_example_still_loads():
    policy = load_policy(EXAMPLE_POLICY)
    assert policy.approvals.channel == "C0APPROVALS" and policy.approvals.timeout == timedelta(hours=24)


def test_a_policy_that_auto_approves_everything_still_needs_an_approver_for_extensions() -> None:
    data = raw()
    data["approvals"]["approvers"] = {}
    for tier in data["tiers"]:
        tier.pop("approvers", None)
    data["approvals"]["auto_approve"] = [{"name": "everything"}]
    [issue] = issues_of(data)
    assert issue.startswith("approvals.approvers")
    assert "an extension past the self-service caps" in issue and "name at least one user or group" in issue
