"""Provisioning: apply the namespace bundle of a placed lease; compensate when it cannot.

The bundle is applied with server-side apply (or written as GitOps files); a permanent error
(403, 422, the ownership guard) removes what was created, releases the reservation, fails the
lease and tells the requester. Temporary errors propagate so the task retries them.
"""

from __future__ import annotations

import logging

from config.durations import format_moment
from leases.errors import DomainError, InfrastructureError, PermanentError
from leases.lifecycle import transition
from leases.models import Lease
from leases.ports import Notice
from leases.reservations import release
from leases.states import LeaseState
from leases.store import session_scope
from provisioners import gitops
from provisioners.bundle import (
    FIELD_MANAGER,
    BundleSpec,
    OwnershipError,
    apply,
    read_namespace,
    spec_from,
    teardown,
)
from provisioners.bundle.apply import server_side_apply
from provisioners.bundle.guard import is_terminating
from provisioners.bundle.render import namespace as namespace_object
from workflows import outbox
from workflows.runtime import Runtime
from workflows.steps.common import SYSTEM, enqueue, fail_lease, locked, log, mark_step
from workflows.views import kubectl_snippet, lease_view

logger = logging.getLogger(__name__)


def has_tier(rt: Runtime, lease: Lease) -> bool:
    """Tell whether the policy still has the lease's tier (an operator may take one out)."""
    return any(tier.name == lease.tier for tier in rt.policy.tiers)


def bundle_spec(rt: Runtime, lease: Lease, *, for_removal: bool = False) -> BundleSpec:
    """Build the lease's bundle spec from the policy.

    `for_removal`: the spec only deletes, exports or re-labels the namespace, which needs its
    name and the lease's but not the tier's sizes, so it is built even when the policy no
    longer has the lease's tier: a lease of a tier taken out of the policy while it ran is
    still reclaimed. Otherwise such a tier raises PermanentError: the quota cannot be sized."""
    if not for_removal and not has_tier(rt, lease):
        raise PermanentError(
            f"tier {lease.tier} is no longer in the policy, so the quota of {lease.namespace} cannot be "
            f"sized; put {lease.tier} back in the policy's tiers, or request another tier"
        )
    return spec_from(
        rt.policy,
        lease_id=lease.id,
        namespace=lease.namespace,
        cluster=lease.cluster,
        tier=lease.tier,
        team=lease.team,
        requester=lease.requester,
        email=lease.requester_email or f"{lease.requester.lower()}@unknown.invalid",
        units=lease.units,
        expires_at=lease.expires_at or rt.now(),
        for_removal=for_removal,
    )


def apply_bundle(rt: Runtime, spec: BundleSpec) -> None:
    """Apply the bundle to the cluster, or write it as GitOps files when so configured."""
    if rt.gitops_dir is not None:
        gitops.write_bundle(spec, root=rt.gitops_dir)
    else:
        apply(rt.kube(spec.cluster), spec, retry=rt.retry)


def relabel_bundle(rt: Runtime, spec: BundleSpec) -> bool:
    """Bring the namespace's labels and annotations (owner, expiry) up to date and keep every
    other object as it is, in the cluster or in the GitOps folder; False when there is no
    namespace (or folder) of the lease to relabel, which is then not created.

    For a lease whose tier the policy no longer has: its quota cannot be sized again, and a
    namespace without its quota would hand out GPUs without limit."""
    if rt.gitops_dir is not None:
        return gitops.relabel_bundle(spec, root=rt.gitops_dir)
    api = rt.kube(spec.cluster)
    current = read_namespace(api, spec, retry=rt.retry)  # the ownership guard
    if current is None or is_terminating(current):
        return False
    server_side_apply(api, namespace_object(spec), field_manager=FIELD_MANAGER, retry=rt.retry)
    return True


def remove_bundle(rt: Runtime, spec: BundleSpec) -> None:
    """Delete the lease's namespace and wait until it is gone; in GitOps mode remove its folder
    and wait, reading only, until Argo CD or Flux has pruned the namespace (with its GPU pods):
    either way, bounded by the teardown timeout, past which TemporaryError says what to do."""
    if rt.gitops_dir is not None:
        gitops.remove_bundle(spec, root=rt.gitops_dir)
        gitops.wait_pruned(
            rt.kube(spec.cluster), spec, root=rt.gitops_dir, timeout=rt.teardown_timeout,
            poll=rt.teardown_poll, retry=rt.retry,
        )
    else:
        teardown(
            rt.kube(spec.cluster), spec, timeout=rt.teardown_timeout, poll=rt.teardown_poll, retry=rt.retry
        )


# A lease in one of these has no business with a namespace: whatever an apply wrote for it
# after it got there is removed again.
ENDED = (LeaseState.RECLAIMING, LeaseState.RECLAIMED, LeaseState.FAILED)


def remove_stray(rt: Runtime, spec: BundleSpec, *, state: LeaseState) -> None:
    """Remove the bundle an apply wrote for a lease that ended while it ran: a release, reclaim
    or compensation may have deleted the namespace just before the apply created it again."""
    logger.warning(
        "lease.apply.after_end lease=%s state=%s",
        spec.lease_id,
        state,
        extra={"event": "lease.apply.after_end", "lease_id": spec.lease_id, "state": str(state)},
    )
    try:
        remove_bundle(rt, spec)
    except (OwnershipError, InfrastructureError) as exc:
        # Left for the reconciler, which reports a namespace of a lease that is not live.
        logger.warning(
            "lease.apply.after_end.failed lease=%s error=%s",
            spec.lease_id,
            exc,
            extra={"event": "lease.apply.after_end.failed", "lease_id": spec.lease_id},
        )


def provision(rt: Runtime, lease_id: str) -> str:
    """Create the lease's namespace and objects and make the lease active."""
    with session_scope(rt.engine) as session:
        lease = locked(session, lease_id)
        if lease.state is not LeaseState.PROVISIONING:
            return str(lease.state)
        mark_step(lease, "provision", rt.now())
        refused = None
        try:
            spec = bundle_spec(rt, lease)
        except PermanentError as exc:  # its tier left the policy: there is no quota to size
            refused = str(exc)
    if refused is not None:
        return compensate(rt, lease_id, reason=refused)
    try:
        apply_bundle(rt, spec)
    except (PermanentError, OwnershipError) as exc:
        return compensate(rt, lease_id, reason=str(exc))
    now = rt.now()
    with session_scope(rt.engine) as session:
        lease = locked(session, lease_id)
        state = lease.state
    if state in ENDED:
        remove_stray(rt, spec, state=state)
        return str(state)
    with session_scope(rt.engine) as session:
        lease = locked(session, lease_id)
        if lease.state is not LeaseState.PROVISIONING:
            return str(lease.state)
        transition(session, lease=lease, to=LeaseState.ACTIVE, actor=SYSTEM, reason=None, now=now)
        mark_step(lease, None, now)
        view = lease_view(rt, lease)
        outbox.add(
            session,
            key=f"{lease.id}:active",
            target="requester",
            lease_id=lease.id,
            now=now,
            notice=Notice(
                kind="lease.active",
                text=f"{lease.namespace} is ready: {lease.units}× {lease.tier} until "
                f"{format_moment(lease.expires_at)}.",
                lease=view,
                data={"kubectl": kubectl_snippet(rt, lease)},
                actions=("extend", "release"),
            ),
        )
        log("lease.active", lease, tier=lease.tier, units=lease.units)
        state = str(lease.state)
    enqueue(rt, "deliver")
    return state


def compensate(rt: Runtime, lease_id: str, *, reason: str) -> str:
    """Undo a failed provisioning: remove what we created, release, fail, tell the requester."""
    with session_scope(rt.engine) as session:
        lease = locked(session, lease_id)
        # Removing needs no tier sizes: a lease whose tier left the policy is cleaned up too.
        state, spec = lease.state, bundle_spec(rt, lease, for_removal=True)
    if state is not LeaseState.PROVISIONING:
        # Activated by another attempt: left alone. Released meanwhile: the failed apply may
        # still have created the namespace after the reclaim removed it.
        if state in (LeaseState.RECLAIMING, LeaseState.RECLAIMED):
            remove_stray(rt, spec, state=state)
        return str(state)
    cleanup = "removed what was created"
    try:
        remove_bundle(rt, spec)
    except OwnershipError as exc:
        cleanup = f"left the namespace alone: {exc}"  # not ours: never touched
    except (InfrastructureError, DomainError) as exc:
        cleanup = f"could not remove the namespace ({exc}); an admin is told"
    now = rt.now()
    with session_scope(rt.engine) as session:
        lease = locked(session, lease_id)
        if lease.state is not LeaseState.PROVISIONING:
            return str(lease.state)  # activated by another attempt, released, or failed already
        release(session, lease=lease, now=now)
        fail_lease(
            rt,
            session,
            lease,
            reason=reason,
            text=f"{lease.namespace} could not be created: {reason}",
            data={"cleanup": cleanup},
        )
        view = lease_view(rt, lease)
        if not cleanup.startswith("removed"):
            outbox.add(
                session,
                key=f"{lease.id}:failed:admins",
                target="admins",
                lease_id=lease.id,
                now=now,
                notice=Notice(kind="admin.cleanup_needed", text=f"{lease.namespace}: {cleanup}", lease=view),
            )
        log("lease.provision.failed", lease, reason=reason, cleanup=cleanup)
        state, cluster = str(lease.state), lease.cluster
    enqueue(rt, "deliver")
    enqueue(rt, "wake_waitlist", cluster)
    return state
