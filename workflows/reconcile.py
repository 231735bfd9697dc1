"""The reconciler: compare the store with each cluster, repair drift, report orphans.

Running leases get their bundle applied again (server-side apply changes only what drifted:
a quota edited by hand, a deleted RoleBinding). Managed namespaces with no live lease, and
running leases whose namespace is gone, are reported to the admins, never deleted; so is a
running lease whose tier the policy no longer has, whose bundle is then left as it is.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from sqlmodel import col, select

from config.policy import PinningMechanism
from leases.errors import InfrastructureError
from leases.models import Lease
from leases.ports import Notice
from leases.states import LIVE_STATES, LeaseState
from leases.store import session_scope
from provisioners.bundle import BundleSpec, OwnershipError, apply_cluster_objects, render_cluster_objects
from provisioners.kube.client import request
from workflows import outbox
from workflows.runtime import Runtime
from workflows.steps.common import RUNNING, enqueue
from workflows.steps.provisioning import ENDED, apply_bundle, bundle_spec, remove_stray
from workflows.sweeps import ClusterFailures

logger = logging.getLogger(__name__)

MANAGED = "app.kubernetes.io/managed-by=gpulease"
LEASE_LABEL = "gpulease.io/lease"


@dataclass
class ReconcileReport:
    repaired: list[str] = field(default_factory=list)
    orphan_namespaces: list[str] = field(default_factory=list)
    missing_namespaces: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    # Running leases of a tier the policy no longer has: their bundle cannot be sized, so it is
    # left as it is (they are still reclaimed when they end).
    unknown_tier: list[str] = field(default_factory=list)


def managed_namespaces(rt: Runtime, cluster: str) -> dict[str, str | None]:
    """Return managed namespaces on a cluster with the lease id each is labelled with."""
    body = rt.retry.call(
        request,
        rt.kube(cluster),
        "GET",
        "/api/v1/namespaces",
        query=[("labelSelector", MANAGED)],
        what="list namespaces",
    )
    found = {}
    for item in body.get("items") or []:
        meta = item.get("metadata") or {}
        if meta.get("deletionTimestamp"):
            continue  # being deleted: a reclaim in progress, not an orphan
        found[meta["name"]] = (meta.get("labels") or {}).get(LEASE_LABEL)
    return found


def reconcile_cluster(rt: Runtime, cluster: str, report: ReconcileReport | None = None) -> ReconcileReport:
    """Repair drift of every running lease on a cluster and report orphans both ways."""
    report = report or ReconcileReport()
    now = rt.now()
    tiers = {tier.name for tier in rt.policy.tiers}
    notices: list[tuple[str, Notice]] = []
    live: dict[str, tuple[str, LeaseState, BundleSpec | None]] = {}
    with session_scope(rt.engine) as session:
        for lease in session.exec(
            select(Lease).where(Lease.cluster == cluster, col(Lease.state).in_(LIVE_STATES))
        ).all():
            spec = None
            if lease.state in RUNNING and lease.tier not in tiers:
                notices.append(_unknown_tier(lease, report))
            elif lease.state in RUNNING:
                spec = bundle_spec(rt, lease)
            live[lease.namespace] = (lease.id, lease.state, spec)
    if rt.gitops_dir is None:
        present = managed_namespaces(rt, cluster)
    else:
        present = {ns: lease_id for ns, (lease_id, _, spec) in live.items() if spec is not None}
    if rt.gitops_dir is None and rt.policy.pinning_for(cluster) is PinningMechanism.MUTATING_ADMISSION_POLICY:
        # The cluster-wide admission policy may have been deleted by hand; apply it again.
        try:
            apply_cluster_objects(rt.kube(cluster), render_cluster_objects(), retry=rt.retry, force=True)
        except InfrastructureError as exc:
            report.errors.append(f"cluster objects: {exc}")
    for namespace, lease_id in sorted(present.items()):
        holder = live.get(namespace)
        if holder is None or holder[0] != lease_id:
            report.orphan_namespaces.append(namespace)
            notices.append(
                (
                    f"orphan:{cluster}:{namespace}:{lease_id}",
                    Notice(
                        kind="admin.orphan_namespace",
                        text=f"Namespace {namespace} on {cluster} is labelled for lease {lease_id}, which is not "
                        "live in the store. It was left alone; delete it or adopt it by hand.",
                        data={"cluster": cluster, "namespace": namespace, "lease": lease_id},
                    ),
                )
            )
    for namespace, (lease_id, _state, spec) in sorted(live.items()):
        if spec is None:
            continue
        if namespace not in present:
            report.missing_namespaces.append(namespace)
            notices.append(
                (
                    f"missing:{cluster}:{namespace}:{lease_id}",
                    Notice(
                        kind="admin.missing_namespace",
                        text=f"Lease {lease_id} holds {namespace} on {cluster}, but the namespace is gone. "
                        "Release the lease or provision it again.",
                        data={"cluster": cluster, "namespace": namespace, "lease": lease_id},
                    ),
                )
            )
            continue
        try:
            apply_bundle(rt, spec)
        except (InfrastructureError, OwnershipError) as exc:
            report.errors.append(f"{namespace}: {exc}")
            logger.warning("reconcile.failed namespace=%s error=%s", namespace, exc)
            continue
        # The list above is minutes old by now: a lease reclaimed meanwhile gets no namespace back.
        with session_scope(rt.engine) as session:
            state = session.exec(select(Lease.state).where(Lease.id == lease_id)).one()
        if state in ENDED:
            remove_stray(rt, spec, state=LeaseState(state))
        else:
            report.repaired.append(namespace)
    if notices:
        with session_scope(rt.engine) as session:
            for key, notice in notices:
                outbox.add(session, key=key, target="admins", notice=notice, now=now)
        enqueue(rt, "deliver")
    return report


def _unknown_tier(lease: Lease, report: ReconcileReport) -> tuple[str, Notice]:
    """Note a running lease whose tier the policy no longer has; return the admins' notice."""
    report.unknown_tier.append(lease.namespace)
    logger.warning(
        "reconcile.unknown_tier lease=%s namespace=%s tier=%s: the policy has no such tier, so the "
        "namespace's bundle is not repaired",
        lease.id, lease.namespace, lease.tier,
        extra={"event": "reconcile.unknown_tier", "lease_id": lease.id, "namespace": lease.namespace,
               "tier": lease.tier},
    )
    return (
        f"unknown_tier:{lease.cluster}:{lease.namespace}:{lease.id}",
        Notice(
            kind="admin.unknown_tier",
            text=f"Lease {lease.id} holds {lease.namespace} on {lease.cluster} with {lease.units}× {lease.tier}, a "
            "tier the policy no longer has, so its quota and objects are not repaired. Put the tier back in "
            f"the policy, or revoke the lease (`/gpu-admin revoke {lease.namespace}`); it is reclaimed when it "
            "ends either way.",
            data={"cluster": lease.cluster, "namespace": lease.namespace, "lease": lease.id, "tier": lease.tier},
        ),
    )


def reconcile_all(rt: Runtime) -> dict[str, int]:
    """Reconcile every cluster of the policy; return counts for the task result.

    A cluster that fails (its API unreachable, say) is logged and skipped, so the others are
    still reconciled; the run raises at the end, so its task is retried."""
    report = ReconcileReport()
    failures = ClusterFailures(
        "reconcile", "no drift was repaired and no orphaned or missing namespace was looked for"
    )
    for cluster in rt.policy.clusters:
        try:
            reconcile_cluster(rt, cluster.name, report)
        except Exception as exc:  # noqa: BLE001 - one cluster's failure is logged and raised at the end
            report.errors.append(f"{cluster.name}: {exc}")
            failures.add(cluster.name, exc)
    failures.raise_if_any()
    return {k: len(v) for k, v in vars(report).items()}
