"""Build the pieces the services share from settings: the checked policy, the store engine.

The composition root; only gpulease/ modules import this.
"""

from __future__ import annotations

from pathlib import Path

from config.policy import Policy, load_policy
from leases.tiers import check_against_catalog


def load_checked_policy(path: str | Path) -> Policy:
    """Load a policy file and check its tiers against the GPU catalog (PolicyError if bad)."""
    return check_against_catalog(load_policy(path), source=str(path))
