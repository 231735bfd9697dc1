"""Past requests written straight into the store, for the demand estimate to learn from."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlmodel import Session

from leases.models import Lease
from leases.states import LeaseState


def add_past_leases(
    session: Session,
    *,
    cluster: str,
    tier: str,
    count: int,
    over: timedelta,
    now: datetime,
    units: int = 2,
    hours: int = 8,
) -> None:
    """Add `count` leases of `tier` approved evenly over the `over` before `now`, all since
    reclaimed (team ml-research, which must exist)."""
    for i in range(count):
        at = now - over + over * i / count
        session.add(
            Lease(
                namespace=f"past-{tier}-{i}",
                cluster=cluster,
                requester="U0PAST",
                team="ml-research",
                tier=tier,
                units=units,
                duration_seconds=hours * 3600,
                state=LeaseState.RECLAIMED,
                created_at=at,
                updated_at=at,
                decided_at=at,
            )
        )
