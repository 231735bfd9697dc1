"""Shared fixtures: the example policy and bundle specs built from it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from config.policy import Policy, load_policy
from config.settings import EXAMPLE_POLICY
from provisioners.bundle import BundleSpec, spec_from

LEASE_ID = "0123456789abcdef0123456789abcdef"
EXPIRES = datetime(2030, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)


@pytest.fixture(scope="session")
def policy() -> Policy:
    return load_policy(EXAMPLE_POLICY)


def make_spec(policy: Policy, **overrides) -> BundleSpec:
    values = dict(
        lease_id=LEASE_ID,
        namespace="ml-alice-1",
        cluster="sandbox",
        tier="h100-1g",
        team="ml-research",
        requester="U0ALICE",
        email="alice@example.com",
        units=2,
        expires_at=EXPIRES,
    )
    values.update(overrides)
    return spec_from(policy, **values)
