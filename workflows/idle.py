"""Idle reclamation: leases whose GPUs sit idle are warned, then reclaimed.

Reads DCGM exporter utilisation (`DCGM_FI_DEV_GPU_UTIL`, labelled with the pod's namespace)
from Prometheus. A running lease whose highest utilisation over the policy's `idle_after`
window stays below `idle_threshold_percent` — or that ran no GPU pod at all while the exporter
reports for others — is warned once; if it is still idle a grace period later, and the
requester neither extended it nor marked it busy, it is reclaimed. When Prometheus or the
exporter cannot be read, nothing is reclaimed.
"""

from __future__ import annotations

import json
import logging
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlmodel import col, select

from config.durations import format_duration
from leases.models import AuditEvent, Lease
from leases.ports import Notice
from leases.records import record_event
from leases.store import session_scope
from workflows import outbox
from workflows.runtime import Runtime
from workflows.steps.common import SYSTEM, enqueue
from workflows.steps.reclaiming import RUNNING, start_reclaim
from workflows.views import lease_view

logger = logging.getLogger(__name__)

METRIC = "DCGM_FI_DEV_GPU_UTIL"
ACTIVITY = ("lease.marked_busy", "lease.extended")


class PrometheusError(Exception):
    """Prometheus could not be queried."""


@dataclass
class IdleReport:
    warned: list[str] = field(default_factory=list)
    reclaimed: list[str] = field(default_factory=list)
    skipped: str | None = None


def query(url: str, promql: str, *, at: datetime, timeout: float = 10.0) -> list[dict]:
    """Run an instant query and return its result vector."""
    data = urllib.parse.urlencode({"query": promql, "time": f"{at.timestamp():.3f}"}).encode()
    try:
        with urllib.request.urlopen(f"{url.rstrip('/')}/api/v1/query", data=data, timeout=timeout) as resp:
            body = json.load(resp)
    except (OSError, ValueError) as exc:
        raise PrometheusError(f"cannot query Prometheus at {url}: {exc}") from exc
    if body.get("status") != "success":
        raise PrometheusError(f"Prometheus refused {promql!r}: {body.get('error')}")
    return body["data"]["result"]


def utilisation(
    url: str, namespaces: list[str], *, window: timedelta, at: datetime
) -> dict[str, float] | None:
    """Return the highest GPU utilisation per namespace over the window; None if no exporter data."""
    if not query(url, f"count({METRIC})", at=at):
        return None
    pattern = "|".join(namespaces)
    promql = (
        f'max by (namespace) (max_over_time({METRIC}{{namespace=~"{pattern}"}}'
        f"[{int(window.total_seconds())}s]))"
    )
    return {r["metric"].get("namespace", ""): float(r["value"][1]) for r in query(url, promql, at=at)}


def _last(session, lease_id: str, actions: tuple[str, ...]) -> datetime | None:
    return session.exec(
        select(AuditEvent.at)
        .where(AuditEvent.lease_id == lease_id, col(AuditEvent.action).in_(actions))
        .order_by(col(AuditEvent.at).desc())
    ).first()


def idle_sweep(rt: Runtime, now: datetime | None = None) -> IdleReport:
    """Warn idle leases, and reclaim those still idle a grace period after their warning."""
    report = IdleReport()
    expiry = rt.policy.expiry
    if rt.prometheus_url is None or expiry.idle_after is None:
        report.skipped = "idle reclamation is off"
        return report
    now = now or rt.now()
    window = expiry.idle_after
    grace = min(expiry.warnings) if expiry.warnings else timedelta(hours=1)
    with session_scope(rt.engine) as session:
        leases = session.exec(
            select(Lease).where(col(Lease.state).in_(RUNNING), Lease.active_at <= now - window)
        ).all()
        candidates = [(lease.id, lease.namespace) for lease in leases]
    if not candidates:
        return report
    try:
        used = utilisation(rt.prometheus_url, [ns for _, ns in candidates], window=window, at=now)
    except PrometheusError as exc:
        report.skipped = str(exc)
        logger.warning("idle.skipped reason=%s", exc, extra={"event": "idle.skipped"})
        return report
    if used is None:
        report.skipped = f"no {METRIC} series in Prometheus: is the DCGM exporter running?"
        return report
    to_reclaim = []
    with session_scope(rt.engine) as session:
        for lease_id, namespace in candidates:
            peak = used.get(namespace)
            if peak is not None and peak >= expiry.idle_threshold_percent:
                continue
            lease = session.get(Lease, lease_id, with_for_update=True)
            if lease is None or lease.state not in RUNNING:
                continue
            active = _last(session, lease_id, ACTIVITY)
            if active is not None and active > now - window:
                continue  # extended or marked busy recently: give it the whole window again
            warned = _last(session, lease_id, ("lease.idle_warned",))
            if warned is None or (active is not None and warned < active):
                record_event(
                    session,
                    actor=SYSTEM,
                    action="lease.idle_warned",
                    now=now,
                    lease_id=lease_id,
                    data={"peak_percent": peak},
                )
                shown = "no GPU use" if peak is None else f"at most {peak:.0f}% GPU use"
                outbox.add(
                    session,
                    key=f"{lease_id}:idle:{now.isoformat()}",
                    target="requester",
                    lease_id=lease_id,
                    now=now,
                    notice=Notice(
                        kind="lease.idle_warning",
                        text=f"{namespace} has had {shown} for {format_duration(window)}. It will be reclaimed in "
                        f"{format_duration(grace)} unless you extend it or say it is in use.",
                        lease=lease_view(rt, lease),
                        data={"peak_percent": peak},
                        actions=("mark_busy", "extend", "release"),
                    ),
                )
                report.warned.append(lease_id)
            elif now - warned >= grace:
                to_reclaim.append(lease_id)
    for lease_id in to_reclaim:
        start_reclaim(rt, lease_id=lease_id, actor=SYSTEM, reason=f"idle for {format_duration(window)}")
        report.reclaimed.append(lease_id)
    enqueue(rt, "deliver")
    return report
