"""Idle reclamation reads what the DCGM exporter really reports per tier: MIG instances have
only the profiling metric, time-shares are not attributed at all, and a warning holds only for
the idle spell it was sent in."""

from __future__ import annotations

from datetime import timedelta

from leases.states import LeaseState
from sandbox.prometheus import PrometheusSandbox
from tests.integration.workflows.conftest import roomy_policy
from tests.integration.workflows.test_pipeline import request, state_of
from workflows import api
from workflows.idle import idle_sweep

ENGINE = "DCGM_FI_PROF_GR_ENGINE_ACTIVE"
UTIL = "DCGM_FI_DEV_GPU_UTIL"


def _active(rt, *requests) -> list[str]:
    ids = []
    for req in requests:
        submitted = api.submit(req)
        if state_of(rt, submitted.lease_id) is LeaseState.PENDING_APPROVAL:
            approver = "U0APPROVER2" if req.tier == "h100-full" else "U0APPROVER1"
            api.decide(lease_id=submitted.lease_id, approver=approver, approve=True)
        ids.append(submitted.lease_id)
    rt.queue.drain()
    for lease_id in ids:
        assert state_of(rt, lease_id) is LeaseState.ACTIVE
    return ids


def _samples(prom, clock, metric: str, namespace: str, values) -> None:
    """Add one sample every 5 minutes from now: `values(minute)`."""
    start = clock().timestamp()
    for minute in range(0, 14 * 60, 5):
        prom.add_samples({"__name__": metric, "namespace": namespace, "pod": "p"}, [(start + minute * 60, values(minute))])


def test_a_busy_mig_lease_is_measured_by_engine_activity(make_runtime, clock):
    with PrometheusSandbox() as prom:
        rt = make_runtime(
            policy=roomy_policy(idle_after="2h", idle_threshold_percent=5),
            prometheus_url=prom.url,
            nodes=(("h100-1g-0", "h100-1g"), ("h100-full-0", "h100-full")),
        )
        mig, full, quiet = _active(
            rt,
            request(namespace="mig-train", duration=timedelta(days=3), tier="h100-1g"),
            request(namespace="full-train", duration=timedelta(days=3), tier="h100-full"),
            request(namespace="mig-quiet", duration=timedelta(days=3), tier="h100-1g"),
        )
        # Whole GPUs report both metrics; a MIG instance only its engine's active ratio (0-1).
        _samples(prom, clock, UTIL, "full-train", lambda _: 95.0)
        _samples(prom, clock, ENGINE, "full-train", lambda _: 0.95)
        _samples(prom, clock, ENGINE, "mig-train", lambda _: 0.97)
        _samples(prom, clock, ENGINE, "mig-quiet", lambda _: 0.02)
        clock.advance(timedelta(hours=2, minutes=1))
        assert idle_sweep(rt).warned == [quiet]
        clock.advance(timedelta(hours=1))
        assert idle_sweep(rt).reclaimed == [quiet]
        rt.queue.drain()
        assert state_of(rt, mig) is LeaseState.ACTIVE and state_of(rt, full) is LeaseState.ACTIVE


def test_a_time_shared_lease_without_series_is_not_called_idle(make_runtime, clock):
    with PrometheusSandbox() as prom:
        rt = make_runtime(
            policy=roomy_policy(idle_after="2h"),
            prometheus_url=prom.url,
            nodes=(("h100-shared-0", "h100-shared"), ("h100-full-0", "h100-full")),
        )
        shared, full = _active(
            rt,
            request(namespace="shared-nb", duration=timedelta(days=3), tier="h100-shared"),
            request(namespace="full-nb", duration=timedelta(days=3), tier="h100-full"),
        )
        _samples(prom, clock, UTIL, "other", lambda _: 50.0)  # the exporter runs, for someone else
        clock.advance(timedelta(hours=2, minutes=1))
        # No series: a whole GPU ran no pod, but a time-share's pods cannot be told apart.
        assert idle_sweep(rt).warned == [full]
        assert state_of(rt, shared) is LeaseState.ACTIVE


def test_a_warning_from_an_earlier_idle_spell_is_not_enough_to_reclaim(make_runtime, clock):
    with PrometheusSandbox() as prom:
        rt = make_runtime(
            policy=roomy_policy(idle_after="2h", idle_threshold_percent=5),
            prometheus_url=prom.url,
            nodes=(("h100-full-0", "h100-full"),),
        )
        (lease,) = _active(rt, request(namespace="nb", duration=timedelta(days=3), tier="h100-full"))
        # Idle for 2 h, training from 2h05 to 10 h, idle again after.
        _samples(prom, clock, UTIL, "nb", lambda minute: 80.0 if 125 <= minute < 600 else 1.0)
        clock.advance(timedelta(hours=2, minutes=1))
        assert idle_sweep(rt).warned == [lease]
        clock.advance(timedelta(hours=1))
        assert idle_sweep(rt).reclaimed == []  # training since the warning
        clock.advance(timedelta(hours=9))  # 12h01: idle for two hours again
        again = idle_sweep(rt)
        assert again.reclaimed == [] and again.warned == [lease]
        clock.advance(timedelta(hours=1))
        assert idle_sweep(rt).reclaimed == [lease]
        rt.queue.drain()
        assert rt.notifier.kinds("requester").count("lease.idle_warning") == 2
        assert state_of(rt, lease) is LeaseState.RECLAIMED
