"""What a worker (or the API facade) works with: store, policy, clusters, notifier, clock.

Built once by the composition root (gpulease/) and installed here; tasks and `workflows.api`
read it with `current()`. Tests build their own Runtime and install it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from kubernetes.client import ApiClient
from sqlalchemy.engine import Engine

from config.policy import Policy
from leases.capacity import TierSpec, tier_specs
from leases.ports import Notifier
from provisioners.kube.retry import RetryPolicy


def utc_now() -> datetime:
    """Return the current time, timezone-aware UTC."""
    return datetime.now(UTC)


@dataclass
class Runtime:
    """Dependencies of the workflow steps."""

    engine: Engine
    policy: Policy
    notifier: Notifier
    kube: Callable[[str], ApiClient]  # cluster name -> API client (cached by the factory)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    clock: Callable[[], datetime] = utc_now
    gitops_dir: Path | None = None
    export_dir: Path | None = None  # namespaces' objects are saved here before deletion
    prometheus_url: str | None = None
    teardown_timeout: float = 300.0
    teardown_poll: float = 1.0
    move_timeout: timedelta = timedelta(minutes=15)
    stuck_after: timedelta = timedelta(minutes=5)
    admin_channel: str | None = None
    enqueue: Callable[..., None] | None = None  # set by workflows.tasks: (task name, *ids)

    def __post_init__(self) -> None:
        self.tiers: dict[str, TierSpec] = tier_specs(self.policy)

    def now(self) -> datetime:
        """Return the runtime's notion of now (injectable for tests)."""
        return self.clock()


_current: Runtime | None = None


def install(runtime: Runtime) -> Runtime:
    """Make `runtime` the one tasks and the API use in this process."""
    global _current
    _current = runtime
    return runtime


def current() -> Runtime:
    """Return the installed runtime, or say how to install one."""
    if _current is None:
        raise RuntimeError(
            "no gpulease runtime installed in this process; start workers with `gpulease worker` "
            "or call workflows.runtime.install(...) first"
        )
    return _current
