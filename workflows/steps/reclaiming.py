"""The end of a lease and what leads to it: release, revoke, schedule, reclaim.

Reclaiming deletes the namespace under the ownership guard (optionally exporting its objects
first), waits until it is gone, releases the reservation, sends a GPU-hours receipt and wakes
the waitlist. In GitOps mode it removes the lease's folder instead and waits, reading only,
until Argo CD or Flux has pruned the namespace: until then its GPU pods run on, and its units
are not given to anyone else.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from config.durations import format_moment
from leases.errors import AlreadyDecided, DomainError, NotAuthorised, PermanentError
from leases.lifecycle import transition
from leases.models import AuditEvent, Lease
from leases.ports import Notice
from leases.records import record_event
from leases.reservations import release
from leases.states import LeaseState
from leases.store import session_scope
from provisioners.bundle import BundleSpec, OwnershipError, object_path, render
from provisioners.kube.client import request as kube_request
from provisioners.kube.retry import KubeNotFound
from workflows import outbox
from workflows.runtime import Runtime
from workflows.steps.common import RUNNING, SYSTEM, enqueue, locked, log, mark_step
from workflows.steps.provisioning import bundle_spec, remove_bundle
from workflows.views import gpu_hours, lease_view

logger = logging.getLogger(__name__)

# Set in the data of the audit event that began reclaiming a lease an admin revoked.
REVOKED_BY = "revoked_by"


def start_reclaim(
    rt: Runtime,
    *,
    lease_id: str,
    actor: str,
    reason: str,
    admin: bool = False,
    still_due: Callable[[Session, Lease], bool] | None = None,
    revoked: bool = False,
    revoked_because: str | None = None,
) -> str:
    """Begin reclaiming a running lease now (release by the requester, revoke or expiry).

    `revoked`: an admin (`actor`) revoked it, saying `revoked_because` (as typed, or None); the
    owner's receipt says so.

    A sweep decides from rows it read earlier: `still_due` re-checks its reason under the
    lease's lock, so a lease extended (or marked busy) in between is left running. A lease
    reclaimed already is left as it is: a sweep gets its state back, a person is told (once
    they are found to be allowed) that nothing changed."""
    now = rt.now()
    with session_scope(rt.engine) as session:
        lease = locked(session, lease_id)
        if still_due is not None and lease.state in RUNNING and not still_due(session, lease):
            return str(lease.state)
        if not admin and actor not in (lease.requester, SYSTEM):
            raise NotAuthorised("only the requester or an admin can release this lease", field="actor")
        if lease.state in (LeaseState.RECLAIMING, LeaseState.RECLAIMED):
            if actor == SYSTEM:
                return str(lease.state)
            raise AlreadyDecided(_reclaimed_already(lease, actor=actor))
        if lease.state not in (*RUNNING, LeaseState.PROVISIONING):
            raise DomainError(f"{lease.namespace} is {lease.state}; there is nothing to release yet")
        transition(session, lease=lease, to=LeaseState.RECLAIMING, actor=actor, reason=reason, now=now,
                   data={REVOKED_BY: actor, "reason": revoked_because} if revoked else None)
        mark_step(lease, "reclaim", now)
        log("lease.reclaiming", lease, actor=actor, reason=reason)
        state = str(lease.state)
    enqueue(rt, "reclaim", lease_id)
    return state


def _reclaimed_already(lease: Lease, *, actor: str) -> str:
    """Say that a lease a person asks to end is ending or over already."""
    if lease.state is LeaseState.RECLAIMED:
        return f"{lease.namespace} is reclaimed already"
    gets = "you get" if actor == lease.requester else f"its owner <@{lease.requester}> gets"
    return f"{lease.namespace} is being reclaimed already; {gets} a receipt when it is gone"


def schedule_reclaim(rt: Runtime, *, lease_id: str, at: datetime, actor: str) -> None:
    """Record an admin's reclaim time; the minute sweep acts on it (never a Celery ETA)."""
    now = rt.now()
    with session_scope(rt.engine) as session:
        lease = locked(session, lease_id)
        if lease.state not in RUNNING:
            raise DomainError(f"{lease.namespace} is {lease.state}; only a running lease can be scheduled")
        lease.reclaim_at = at
        record_event(
            session, actor=actor, action="lease.reclaim_scheduled", now=now, lease_id=lease.id,
            data={"at": at.isoformat()},
        )
        outbox.add(
            session,
            key=f"{lease.id}:scheduled:{at.isoformat()}",
            target="requester",
            lease_id=lease.id,
            now=now,
            notice=Notice(
                kind="lease.reclaim_scheduled",
                text=f"An admin (<@{actor}>) scheduled {lease.namespace} to be reclaimed at {format_moment(at)}.",
                lease=lease_view(rt, lease),
                data={"at": at.isoformat()},
            ),
        )
    enqueue(rt, "deliver")


EXPORTED = "lease.exported"


def _export(rt: Runtime, spec: BundleSpec) -> str | None:
    """Save the namespace's bundle objects as JSON before deletion, when configured.

    Objects that are not there are left out, and so (logged) are those the API server refuses
    to show. An API server that cannot be reached raises, for the task to retry: the export
    is made once, before the namespace is deleted, and must not miss what is still there (in
    GitOps mode too, where the reclaim needs the API anyway, to see the namespace pruned)."""
    if rt.export_dir is None:
        return None
    api = rt.kube(spec.cluster)
    objects = []
    for rendered in render(spec):
        meta = rendered["metadata"]
        if meta.get("namespace") != spec.namespace and rendered["kind"] != "Namespace":
            continue
        try:
            objects.append(
                rt.retry.call(kube_request, api, "GET", object_path(rendered), what=f"get {rendered['kind']}")
            )
        except KubeNotFound:
            continue  # a missing object is simply not exported
        except PermanentError as exc:
            _export_skipped(spec, rendered, exc)
    rt.export_dir.mkdir(parents=True, exist_ok=True)
    path = rt.export_dir / f"{spec.cluster}-{spec.namespace}-{spec.lease_id}.json"
    path.write_text(json.dumps({"lease": spec.lease_id, "items": objects}, indent=2, sort_keys=True))
    return str(path)


def _export_skipped(spec: BundleSpec, rendered: dict, exc: Exception) -> None:
    logger.warning(
        "lease.export.skipped lease=%s namespace=%s kind=%s error=%s: the export of the namespace "
        "leaves this object out; check gpulease's permission to read it",
        spec.lease_id,
        spec.namespace,
        rendered["kind"],
        exc,
        extra={"event": "lease.export.skipped", "lease_id": spec.lease_id, "kind": rendered["kind"]},
    )


def _exported_to(session: Session, lease_id: str) -> str | None:
    """Return where an earlier run of this reclaim exported the namespace, if one did."""
    event = session.exec(
        select(AuditEvent)
        .where(AuditEvent.lease_id == lease_id, AuditEvent.action == EXPORTED)
        .order_by(col(AuditEvent.id).desc())
    ).first()
    return (event.data or {}).get("path") if event is not None else None


def reclaim(rt: Runtime, lease_id: str) -> str:
    """Delete a reclaiming lease's namespace, release its units, send the receipt.

    The namespace is exported (when configured) once, and the export recorded before the
    namespace is deleted: a run again (the task's retry after the namespace was slow to go,
    the stuck-step sweep) finds the record and keeps that export, which an export of the
    namespace being emptied would overwrite."""
    with session_scope(rt.engine) as session:
        lease = locked(session, lease_id)
        if lease.state is not LeaseState.RECLAIMING:
            return str(lease.state)
        mark_step(lease, "reclaim", rt.now())  # under way: the stuck-step sweep leaves it be
        spec = bundle_spec(rt, lease, for_removal=True)
        exported = _exported_to(session, lease_id)
    if exported is None and rt.export_dir is not None:
        exported = _export(rt, spec)  # outside the transaction: no row lock held over API calls
        with session_scope(rt.engine) as session:
            lease = locked(session, lease_id)
            if lease.state is not LeaseState.RECLAIMING:
                return str(lease.state)
            record_event(session, actor=SYSTEM, action=EXPORTED, now=rt.now(), lease_id=lease_id,
                         data={"path": exported})
    note = "namespace deleted"
    try:
        remove_bundle(rt, spec)
    except OwnershipError as exc:
        note = f"namespace left alone: {exc}"
    now = rt.now()
    with session_scope(rt.engine) as session:
        lease = locked(session, lease_id)
        if lease.state is not LeaseState.RECLAIMING:
            return str(lease.state)
        release(session, lease=lease, now=now)
        receipt, figures = _receipt(rt, lease, end=now)
        transition(
            session,
            lease=lease,
            to=LeaseState.RECLAIMED,
            actor=SYSTEM,
            reason=note,
            now=now,
            # The audit trail keeps the receipt's figures, as the requester was told them.
            data={**figures, **({"exported": exported} if exported else {})},
        )
        mark_step(lease, None, now)
        view = lease_view(rt, lease)
        revoked_by, because = _revoked(session, lease_id)
        outbox.add(
            session,
            key=f"{lease.id}:receipt",
            target="requester",
            lease_id=lease.id,
            now=now,
            notice=Notice(
                kind="lease.reclaimed",
                text=f"{_ended(lease.namespace, revoked_by, because)} {receipt}",
                lease=view,
                data={
                    **figures,
                    "start": view["active_at"],
                    "end": now.isoformat(),
                    "extensions": lease.extensions,
                    "exported": exported,
                    "note": note,
                    # As typed: the message escapes it where it shows it.
                    **({REVOKED_BY: revoked_by, "reason": because} if revoked_by else {}),
                },
            ),
        )
        if not note.startswith("namespace deleted"):
            outbox.add(
                session,
                key=f"{lease.id}:reclaim:admins",
                target="admins",
                lease_id=lease.id,
                now=now,
                notice=Notice(kind="admin.reclaim_skipped", text=f"{lease.namespace}: {note}", lease=view),
            )
        log("lease.reclaimed", lease, **figures)
        state, cluster = str(lease.state), lease.cluster
    enqueue(rt, "deliver")
    enqueue(rt, "wake_waitlist", cluster)
    return state


def _receipt(rt: Runtime, lease: Lease, *, end: datetime) -> tuple[str, dict[str, Any]]:
    """Return the receipt's text and its figures: the hours reserved and the GPU-hours.

    GPU-hours need what one unit of the tier is in GPUs, which only the policy says (the store
    keeps units): for a tier the policy no longer has they are not guessed, and the receipt
    says why they are missing (`gpu_hours` None, `gpu_hours_unknown` the reason)."""
    start = lease.active_at or end
    hours = round(max(0.0, (end - start).total_seconds() / 3600), 2)
    span = f"from {format_moment(start)} to {format_moment(end)}, {lease.extensions} extension(s)."
    if lease.tier in rt.tiers:
        reserved = gpu_hours(rt, lease, end=end)
        text = f"Receipt: {reserved} GPU-hours reserved ({lease.units}× {lease.tier}) {span}"
        return text, {"gpu_hours": reserved, "hours": hours}
    unknown = f"tier {lease.tier} is no longer in the policy, so what one of its units is in GPUs is not known"
    text = (
        f"Receipt: {lease.units}× {lease.tier} reserved for {hours} hours {span} "
        f"GPU-hours are not computed: {unknown}."
    )
    return text, {"gpu_hours": None, "hours": hours, "gpu_hours_unknown": unknown}


def _revoked(session: Session, lease_id: str) -> tuple[str | None, str | None]:
    """Return the admin who revoked the lease and what they said, if its reclaim was a revoke."""
    began = session.exec(
        select(AuditEvent)
        .where(AuditEvent.lease_id == lease_id, AuditEvent.to_state == LeaseState.RECLAIMING)
        .order_by(col(AuditEvent.id).desc())
    ).first()
    data = (began.data if began is not None else None) or {}
    return data.get(REVOKED_BY), data.get("reason")


def _ended(namespace: str, revoked_by: str | None, because: str | None) -> str:
    """Say how a lease ended, as the first sentence of its receipt."""
    if revoked_by is None:
        return f"{namespace} was reclaimed."
    if not because:
        return f"{namespace} was revoked by <@{revoked_by}>."
    stop = "" if because.rstrip().endswith((".", "!", "?")) else "."
    return f"{namespace} was revoked by <@{revoked_by}>: {because.rstrip()}{stop}"


def reclaim_stuck(rt: Runtime, lease_id: str, *, reason: str) -> str:
    """Tell the admins, once per lease, that its namespace cannot be removed: the reclaim
    keeps its units and is tried again by the stuck-step sweep until the cause is fixed."""
    now = rt.now()
    with session_scope(rt.engine) as session:
        lease = locked(session, lease_id)
        if lease.state is not LeaseState.RECLAIMING:
            return str(lease.state)
        outbox.add(
            session,
            key=f"{lease.id}:reclaim_stuck",
            target="admins",
            lease_id=lease.id,
            now=now,
            notice=Notice(
                kind="admin.reclaim_stuck",
                text=f"{lease.namespace} on {lease.cluster} cannot be reclaimed: {reason}. Its "
                f"{lease.units}× {lease.tier} stay reserved; the reclaim is tried again every few "
                f"minutes. {_fix_stuck(rt)}",
                lease=lease_view(rt, lease),
                data={"reason": reason},
            ),
        )
        log("lease.reclaim.stuck", lease, reason=reason)
        state = str(lease.state)
    enqueue(rt, "deliver")
    return state


def _fix_stuck(rt: Runtime) -> str:
    """Say what an admin can do about a reclaim that cannot finish."""
    if rt.gitops_dir is not None:
        # Its folder is gone already; the reason says whether Argo CD or Flux did not prune.
        return "Fix the cause or delete the namespace by hand: the reclaim finishes once the namespace is gone."
    return "Fix the cause (permissions, finalizers left in the namespace) or delete the namespace by hand."
