"""Store-derived metrics, read at scrape time: leases by state, units per tier and cluster.

Registered by the services that serve /metrics (the bot's HTTP server, the worker's metrics
port). Counting rows at scrape time keeps the numbers right whichever replica changed them.
"""

from __future__ import annotations

import logging

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy.engine import Engine
from sqlmodel import func, select

from leases.models import Lease
from leases.reservations import pool_usage
from leases.states import LeaseState
from leases.store import session_scope

logger = logging.getLogger(__name__)


class StoreCollector(Collector):
    """Expose lease and pool figures from the state store."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def collect(self):
        leases = GaugeMetricFamily("gpulease_leases", "Leases by state.", labels=["state"])
        units = GaugeMetricFamily(
            "gpulease_pool_units", "Units of each tier pool: capacity, draining (part of capacity), reserved and free.",
            labels=["cluster", "tier", "kind"],
        )
        try:
            with session_scope(self.engine) as session:
                counts = dict(session.exec(select(Lease.state, func.count()).group_by(Lease.state)).all())
                pools = pool_usage(session)
        except Exception as exc:  # noqa: BLE001 - a scrape must not fail because the store is down
            logger.warning("metrics.store_unavailable error=%s", exc)
            return
        for state in LeaseState:
            leases.add_metric([state.value], counts.get(state, 0))
        for pool in pools:
            units.add_metric([pool.cluster, pool.tier, "capacity"], pool.capacity)
            units.add_metric([pool.cluster, pool.tier, "draining"], pool.draining)
            units.add_metric([pool.cluster, pool.tier, "reserved"], pool.reserved)
            units.add_metric([pool.cluster, pool.tier, "free"], pool.free)
        yield leases
        yield units
