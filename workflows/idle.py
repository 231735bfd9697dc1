"""Idle reclamation: leases whose GPUs sit idle are warned, then reclaimed.

Reads DCGM exporter activity, labelled with the pod's namespace, from Prometheus: the graphics
engine's active ratio (`DCGM_FI_PROF_GR_ENGINE_ACTIVE`, the only activity the exporter reports
for a MIG instance) and, where it exists, `DCGM_FI_DEV_GPU_UTIL`; a namespace's use is the
higher of the two, in percent. A running lease whose highest use over the policy's
`idle_after` window stays below `idle_threshold_percent` — or that ran no GPU pod at all while
the exporter reports for others — is warned; if it is still idle a grace period later (idle
the whole time since the warning), and the requester neither extended it nor marked it busy,
it is reclaimed. A warning followed by use does not count for a later idle spell: that spell
is warned again. Time-sliced leases with no series are left alone (the exporter cannot tell
which of a GPU's time-shares a pod holds), and when Prometheus or the exporter cannot be read,
nothing is reclaimed.
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
from config.policy import TierMode
from leases.models import AuditEvent, Lease
from leases.ports import Notice
from leases.records import record_event
from leases.states import LeaseState
from leases.store import session_scope
from workflows import outbox
from workflows.runtime import Runtime
from workflows.steps.common import RUNNING, SYSTEM, enqueue
from workflows.steps.reclaiming import start_reclaim
from workflows.views import lease_view

logger = logging.getLogger(__name__)

# Metric → factor to percent. MIG instances report only the profiling metric.
METRICS = {"DCGM_FI_PROF_GR_ENGINE_ACTIVE": 100.0, "DCGM_FI_DEV_GPU_UTIL": 1.0}
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
    """Return the highest GPU use (percent) per namespace over the window, of any metric in
    METRICS; None if the exporter reports none of them at all."""
    if not any(query(url, f"count({metric})", at=at) for metric in METRICS):
        return None
    pattern = "|".join(namespaces)
    peaks: dict[str, float] = {}
    for metric, scale in METRICS.items():
        promql = (
            f'max by (namespace) (max_over_time({metric}{{namespace=~"{pattern}"}}'
            f"[{max(1, int(window.total_seconds()))}s]))"
        )
        for r in query(url, promql, at=at):
            namespace = r["metric"].get("namespace", "")
            peaks[namespace] = max(peaks.get(namespace, 0.0), float(r["value"][1]) * scale)
    return peaks


def _last(session, lease_id: str, actions: tuple[str, ...]) -> datetime | None:
    return session.exec(
        select(AuditEvent.at)
        .where(AuditEvent.lease_id == lease_id, col(AuditEvent.action).in_(actions))
        .order_by(col(AuditEvent.at).desc())
    ).first()


def _idle_since(rt: Runtime, namespace: str, *, warned: datetime, now: datetime, window: timedelta) -> bool:
    """Return whether the namespace stayed idle from its warning until now. The sweep's window
    covers that when the warning is recent; an older warning (a grace longer than the window,
    or use in between that has stopped again) needs the longer look."""
    if warned >= now - window:
        return True
    try:
        peak = utilisation(rt.prometheus_url or "", [namespace], window=now - warned, at=now)
    except PrometheusError:
        return False  # not known to have stayed idle: warn again rather than reclaim
    seen = (peak or {}).get(namespace)
    return seen is None or seen < rt.policy.expiry.idle_threshold_percent


def _warn(
    rt: Runtime,
    session,
    lease: Lease,
    *,
    peak: float | None,
    now: datetime,
    window: timedelta,
    grace: timedelta,
) -> None:
    """Record and send an idle warning for the lease."""
    record_event(
        session,
        actor=SYSTEM,
        action="lease.idle_warned",
        now=now,
        lease_id=lease.id,
        data={"peak_percent": peak},
    )
    shown = "no GPU use" if peak is None else f"at most {peak:.0f}% GPU use"
    outbox.add(
        session,
        key=f"{lease.id}:idle:{now.isoformat()}",
        target="requester",
        lease_id=lease.id,
        now=now,
        notice=Notice(
            kind="lease.idle_warning",
            text=f"{lease.namespace} has had {shown} for {format_duration(window)}. It will be reclaimed in "
            f"{format_duration(grace)} unless you extend it or say it is in use.",
            lease=lease_view(rt, lease),
            data={"peak_percent": peak},
            actions=("mark_busy", "extend", "release"),
        ),
    )


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
        candidates = [(lease.id, lease.namespace, lease.tier) for lease in leases]
    if not candidates:
        return report
    try:
        used = utilisation(rt.prometheus_url, [ns for _, ns, _ in candidates], window=window, at=now)
    except PrometheusError as exc:
        report.skipped = str(exc)
        logger.warning("idle.skipped reason=%s", exc, extra={"event": "idle.skipped"})
        return report
    if used is None:
        report.skipped = f"no {' or '.join(METRICS)} series in Prometheus: is the DCGM exporter running?"
        return report
    shared = {tier.name for tier in rt.policy.tiers if tier.mode is TierMode.TIMESLICE}
    # Read first, without locks: deciding may query Prometheus again, which no lease lock waits on.
    seen: list[tuple[str, str, float | None, datetime | None, datetime | None]] = []
    with session_scope(rt.engine) as session:
        for lease_id, namespace, tier in candidates:
            peak = used.get(namespace)
            if peak is not None and peak >= expiry.idle_threshold_percent:
                continue
            if peak is None and tier in shared:
                continue  # no series says nothing here: the exporter cannot attribute time-shares
            active = _last(session, lease_id, ACTIVITY)
            if active is not None and active > now - window:
                continue  # extended or marked busy recently: give it the whole window again
            seen.append((lease_id, namespace, peak, active, _last(session, lease_id, ("lease.idle_warned",))))
    to_warn: list[tuple[str, float | None, datetime | None, datetime | None]] = []
    to_reclaim: list[tuple[str, datetime | None]] = []
    for lease_id, namespace, peak, active, warned in seen:
        if warned is not None and (active is None or warned >= active):
            if now - warned < grace:
                continue
            if _idle_since(rt, namespace, warned=warned, now=now, window=window):
                to_reclaim.append((lease_id, active))
                continue
        to_warn.append((lease_id, peak, active, warned))
    with session_scope(rt.engine) as session:
        for lease_id, peak, active, warned in to_warn:
            lease = session.get(Lease, lease_id, with_for_update=True)
            if lease is None or lease.state not in RUNNING:
                continue
            if (_last(session, lease_id, ACTIVITY), _last(session, lease_id, ("lease.idle_warned",))) != (active, warned):
                continue  # the requester acted, or another sweep warned, since the read
            _warn(rt, session, lease, peak=peak, now=now, window=window, grace=grace)
            report.warned.append(lease_id)
    for lease_id, active in to_reclaim:
        state = start_reclaim(
            rt,
            lease_id=lease_id,
            actor=SYSTEM,
            reason=f"idle for {format_duration(window)}",
            # The requester may have extended it or said it is in use since it was checked.
            still_due=lambda session, lease, seen=active: _last(session, lease.id, ACTIVITY) == seen,
        )
        if state == LeaseState.RECLAIMING:
            report.reclaimed.append(lease_id)
    enqueue(rt, "deliver")
    return report
