"""Extending a running lease: within the policy's caps at once, past them by an approver's answer.

A request past the caps is an audit event whose id its approval card names; the first Allow or
Deny on it wins, and the lease's other requests stay open. A granted extension re-applies the
lease's bundle (`refresh`), so the namespace's expiry annotation follows the new expiry.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel import Session, col, select

from config.durations import format_duration, format_moment
from leases.errors import AlreadyDecided, DomainError, NotAuthorised
from leases.lifecycle import extend as extend_lease
from leases.models import AuditEvent, Lease
from leases.policy import evaluate_extension
from leases.ports import Notice
from leases.records import record_event
from leases.store import session_scope
from workflows import outbox
from workflows.runtime import Runtime
from workflows.steps.common import RUNNING, enqueue, locked, log, mark_step
from workflows.steps.provisioning import (
    ENDED,
    apply_bundle,
    bundle_spec,
    has_tier,
    relabel_bundle,
    remove_stray,
)
from workflows.views import lease_view

logger = logging.getLogger(__name__)

# Audit actions of extension requests and their answers; an answer names its request's event.
REQUESTED = "lease.extension_requested"
DENIED = "lease.extension_denied"
GRANTED = "lease.extended"  # lifecycle.extend's action; only an approver's grant names a request


@dataclass(frozen=True)
class Extended:
    outcome: str  # "extended", "approval-required"
    expires_at: datetime | None
    message: str


def extend(
    rt: Runtime,
    *,
    lease_id: str,
    actor: str,
    by: timedelta,
    approved_by: str | None = None,
    expected_extensions: int | None = None,
    request_id: int | None = None,
) -> Extended:
    """Extend a running lease within the policy's caps, or ask an approver past them.

    `expected_extensions` is the count the clicked message showed: if the lease was extended
    since, this click was answered already and changes nothing. An approver's grant answers
    one request (`request_id`, the one its card names), once: a request denied, or allowed,
    already is not granted again, and other requests of the lease stay open.
    """
    now = rt.now()
    with session_scope(rt.engine) as session:
        lease = locked(session, lease_id)
        if expected_extensions is not None and lease.extensions != expected_extensions:
            raise AlreadyDecided(f"{lease.namespace} was extended since this message; nothing changed")
        if lease.state not in RUNNING:
            raise DomainError(f"{lease.namespace} is {lease.state}; only a running lease can be extended")
        if approved_by is None and actor != lease.requester:
            raise NotAuthorised("only the requester can extend this lease", field="actor")
        request = _open_request(session, lease, request_id=request_id, by=by) if approved_by is not None else None
        verdict = evaluate_extension(
            rt.policy,
            extensions_so_far=lease.extensions,
            active_for=now - (lease.active_at or now),
            remaining=max(timedelta(0), (lease.expires_at or now) - now),
            extra=by,
        )
        if verdict.outcome == "refused":
            raise DomainError(verdict.message, field="duration")
        view = lease_view(rt, lease)
        if verdict.outcome == "approval-required" and approved_by is None and _asked_already(session, lease, by):
            # The same request again (a double click, the button in the DM and on Home): its
            # card is out already.
            result = Extended("approval-required", lease.expires_at, verdict.message)
        elif verdict.outcome == "approval-required" and approved_by is None:
            # The event's id names this request: each one gets its own card.
            asked = _extension_event(session, lease, actor=actor, action=REQUESTED, by=by, now=now)
            outbox.add(
                session,
                key=f"{lease.id}:extension:{asked.id}",
                target="approval_card",
                lease_id=lease.id,
                now=now,
                notice=Notice(
                    kind="extension.requested",
                    text=f"<@{lease.requester}> asks to extend {lease.namespace} by {format_duration(by)}: "
                    f"{verdict.message}",
                    lease=view,
                    # Its buttons name the request they answer.
                    data={"channel": rt.policy.approvals.channel, "by_seconds": int(by.total_seconds()),
                          "request": asked.id},
                    actions=("approve_extension", "deny"),
                ),
            )
            result = Extended("approval-required", lease.expires_at, verdict.message)
        else:
            granted = extend_lease(
                session, lease=lease, by=by, actor=approved_by or actor, now=now, reason=verdict.message
            )
            if request is not None:
                granted.data = {**(granted.data or {}), "request": request.id}  # answered: first decision wins
            mark_step(lease, "refresh", now)
            outbox.add(
                session,
                key=f"{lease.id}:extended:{lease.extensions}",
                target="requester",
                lease_id=lease.id,
                now=now,
                notice=Notice(
                    kind="lease.extended",
                    text=f"{lease.namespace} now runs until {format_moment(lease.expires_at)}"
                    + (f" (approved by <@{approved_by}>)" if approved_by else ""),
                    lease=lease_view(rt, lease),
                ),
            )
            log("lease.extended", lease, by=format_duration(by), expires_at=lease.expires_at.isoformat())
            result = Extended("extended", lease.expires_at, verdict.message)
    if result.outcome == "extended":
        enqueue(rt, "refresh", lease_id)  # the namespace's expiry annotation follows
    enqueue(rt, "deliver")
    return result


def refresh(rt: Runtime, lease_id: str) -> None:
    """Re-apply a running lease's bundle (new expiry, drift repair).

    A lease whose tier the policy no longer has gets only its namespace's labels and
    annotations (the new expiry) brought up to date: its quota and objects cannot be sized
    again, so they are kept as they are in the cluster (the reconciler tells the admins)."""
    with session_scope(rt.engine) as session:
        lease = locked(session, lease_id)
        if lease.state not in RUNNING:
            return
        sized = has_tier(rt, lease)
        spec = bundle_spec(rt, lease, for_removal=not sized)
    if sized:
        apply_bundle(rt, spec)
    elif not relabel_bundle(rt, spec):
        logger.warning(
            "lease.refresh.no_namespace lease=%s namespace=%s tier=%s: the lease's tier is no longer in "
            "the policy and its namespace is gone, which is not created again without a quota; put the "
            "tier back in the policy, or revoke the lease",
            spec.lease_id, spec.namespace, spec.tier,
            extra={"event": "lease.refresh.no_namespace", "lease_id": spec.lease_id, "tier": spec.tier},
        )
    with session_scope(rt.engine) as session:
        lease = locked(session, lease_id)
        state = lease.state
        if lease.step == "refresh":
            mark_step(lease, None, rt.now())
    if state in ENDED:
        remove_stray(rt, spec, state=state)


def _extension_event(
    session: Session, lease: Lease, *, actor: str, action: str, by: timedelta, now: datetime,
    request: int | None = None,
) -> AuditEvent:
    """Record an extension request, or the denial of `request`, flushed so that its id can name it."""
    data = {"by_seconds": int(by.total_seconds()), "extensions": lease.extensions}
    if request is not None:
        data["request"] = request
    event = record_event(session, actor=actor, action=action, now=now, lease_id=lease.id, data=data)
    session.flush()
    return event


def _extension_requests(session: Session, lease: Lease) -> tuple[list[AuditEvent], dict[int, AuditEvent]]:
    """Return the lease's extension requests, oldest first, and the first decision on each by
    request id. A denial recorded before decisions named their request answered the request
    latest at the time."""
    events = session.exec(
        select(AuditEvent)
        .where(AuditEvent.lease_id == lease.id, col(AuditEvent.action).in_((REQUESTED, DENIED, GRANTED)))
        .order_by(col(AuditEvent.id))
    ).all()
    asked: list[AuditEvent] = []
    decided: dict[int, AuditEvent] = {}
    for event in events:
        if event.action == REQUESTED:
            asked.append(event)
            continue
        request = (event.data or {}).get("request")
        if request is None and event.action == DENIED and asked:
            request = asked[-1].id
        if request is not None:
            decided.setdefault(int(request), event)
    return asked, decided


def _asked(event: AuditEvent) -> tuple[int | None, int | None]:
    """Return a request's length in seconds and the extension count it was made at."""
    data = event.data or {}
    return data.get("by_seconds"), data.get("extensions")


def _open_request(
    session: Session, lease: Lease, *, request_id: int | None, by: timedelta
) -> AuditEvent:
    """Return the extension request an approver's click answers, if no one answered it yet.

    `request_id` is the request the card names. A card posted before cards named their request
    shows only its length: the request is then the lease's undecided one of that length at its
    current extension count (the same request again has the same effect)."""
    asked, decided = _extension_requests(session, lease)
    seconds = int(by.total_seconds())
    if request_id is not None:
        request = next((event for event in asked if event.id == request_id), None)
        if request is None or _asked(request)[0] != seconds:
            raise DomainError(
                f"this card does not match an extension request of {lease.namespace}; nothing changed. "
                f"Ask <@{lease.requester}> to request the extension again", field="request"
            )
    else:
        same = [event for event in asked if _asked(event) == (seconds, lease.extensions)]
        request = next((event for event in reversed(same) if event.id not in decided), same[-1] if same else None)
        if request is None:
            raise DomainError(
                f"<@{lease.requester}> has not asked to extend {lease.namespace} by {format_duration(by)}; "
                "nothing changed", field="request"
            )
    if (answer := decided.get(request.id)) is not None:
        verb = "denied" if answer.action == DENIED else "allowed"
        raise AlreadyDecided(f"<@{answer.actor}> {verb} this extension of {lease.namespace} already")
    if _asked(request)[1] != lease.extensions:
        raise AlreadyDecided(f"{lease.namespace} was extended since this request; nothing changed")
    return request


def _asked_already(session: Session, lease: Lease, by: timedelta) -> bool:
    """Return whether the approvers have this very request open: one undecided, for the same
    length at the same extension count."""
    asked, decided = _extension_requests(session, lease)
    return any(
        event.id not in decided and _asked(event) == (int(by.total_seconds()), lease.extensions) for event in asked
    )


def deny_extension(
    rt: Runtime,
    *,
    lease_id: str,
    approver: str,
    by: timedelta,
    expected_extensions: int | None = None,
    request_id: int | None = None,
) -> None:
    """Record an approver's refusal of one extension request past the caps (`request_id`, the
    request the card names), and tell the requester.

    Decided under the lease's lock, as a grant is: the first of Allow and Deny on a request
    wins, and `expected_extensions` (the count the card showed) tells a card already answered.
    Other requests of the lease stay open."""
    now = rt.now()
    with session_scope(rt.engine) as session:
        lease = locked(session, lease_id)
        if expected_extensions is not None and lease.extensions != expected_extensions:
            raise AlreadyDecided(f"{lease.namespace} was extended since this request; nothing changed")
        if lease.state not in RUNNING:
            raise AlreadyDecided(f"{lease.namespace} is {lease.state}: there is nothing left to extend")
        request = _open_request(session, lease, request_id=request_id, by=by)
        denial = _extension_event(session, lease, actor=approver, action=DENIED, by=by, now=now, request=request.id)
        outbox.add(
            session,
            key=f"{lease.id}:extension_denied:{denial.id}",
            target="requester",
            lease_id=lease.id,
            now=now,
            notice=Notice(
                kind="lease.extension_denied",
                text=f"<@{approver}> did not allow extending {lease.namespace}; it ends as planned "
                f"({format_moment(lease.expires_at) if lease.expires_at else 'unknown'}).",
                lease=lease_view(rt, lease),
            ),
        )
    enqueue(rt, "deliver")
