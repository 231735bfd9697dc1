"""A spec for removing a namespace is built even when the policy no longer has the lease's tier."""

from __future__ import annotations

import pytest

from config.policy import PerUnit, Policy
from provisioners.bundle import render

from .conftest import LEASE_ID, make_spec


def test_a_tier_the_policy_lost_is_refused_for_an_apply_and_taken_for_a_removal(policy: Policy) -> None:
    with pytest.raises(KeyError, match="unknown tier 'gone-3g'"):
        make_spec(policy, tier="gone-3g")
    spec = make_spec(policy, tier="gone-3g", for_removal=True)
    assert (spec.namespace, spec.lease_id, spec.tier, spec.tier_label) == ("ml-alice-1", LEASE_ID, "gone-3g", "gone-3g")
    assert (spec.cpu_per_unit, spec.memory_per_unit, spec.pods_per_unit) == (
        PerUnit().cpu, PerUnit().memory, PerUnit().pods)
    namespace = next(o for o in render(spec) if o["kind"] == "Namespace")  # what an export reads
    assert namespace["metadata"]["name"] == "ml-alice-1"
    with pytest.raises(KeyError, match="unknown cluster"):
        make_spec(policy, tier="gone-3g", cluster="nope", for_removal=True)


def test_a_removal_spec_of_a_tier_the_policy_has_is_the_bundle_spec(policy: Policy) -> None:
    assert make_spec(policy, for_removal=True) == make_spec(policy)
