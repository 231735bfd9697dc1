"""Queue names, in one place: workers subscribe to these and tasks are routed by them."""

from __future__ import annotations

from enum import StrEnum


class Queue(StrEnum):
    """Celery queues of gpulease."""

    # Lease steps: submit follow-ups, placement, provisioning, reclamation.
    LEASES = "gpulease.leases"
    # Node moves between tiers: slow (minutes), kept apart so they never starve lease steps.
    MOVES = "gpulease.moves"
    # Beat sweeps and the outbox dispatcher: short, periodic, expiring.
    SWEEPS = "gpulease.sweeps"


ALL = tuple(q.value for q in Queue)
