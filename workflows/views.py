"""Plain snapshots of leases for notices, and the text people are shown."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from config.durations import format_duration
from leases.models import Lease
from workflows.runtime import Runtime


def lease_view(rt: Runtime, lease: Lease) -> dict[str, Any]:
    """Return the fields of a lease a message may show."""
    tier = next((t for t in rt.policy.tiers if t.name == lease.tier), None)
    return {
        "id": lease.id,
        "namespace": lease.namespace,
        "cluster": lease.cluster,
        "requester": lease.requester,
        "team": lease.team,
        "tier": lease.tier,
        "tier_display": tier.display if tier else lease.tier,
        "units": lease.units,
        "duration": format_duration(timedelta(seconds=lease.duration_seconds)),
        "reason": lease.reason,
        "state": str(lease.state),
        "created_at": _iso(lease.created_at),
        "active_at": _iso(lease.active_at),
        "expires_at": _iso(lease.expires_at),
        "extensions": lease.extensions,
    }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def kubectl_snippet(rt: Runtime, lease: Lease) -> str:
    """Return how to use the namespace with kubectl and unchanged pod YAML."""
    return (
        f"kubectl config set-context --current --namespace={lease.namespace}\n"
        "# request GPUs as usual; the platform pins pods to the right nodes:\n"
        "#   resources:\n"
        "#     limits:\n"
        f"#       nvidia.com/gpu: 1   # up to {lease.units} in this namespace\n"
        f"kubectl -n {lease.namespace} get resourcequota"
    )


def gpu_hours(rt: Runtime, lease: Lease, *, end: datetime) -> float:
    """Return the GPU-hours the lease reserved (units in whole-GPU equivalents × hours)."""
    if lease.active_at is None:
        return 0.0
    spec = rt.tiers.get(lease.tier)
    per_gpu = spec.units_per_gpu if spec else 1
    hours = max(0.0, (end - lease.active_at).total_seconds() / 3600)
    return round(lease.units / per_gpu * hours, 2)
