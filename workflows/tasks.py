"""Celery tasks: thin wrappers that run a step with the installed runtime.

Tasks take ids, never objects. Temporary errors are retried with bounded exponential
backoff; permanent ones fail the step (provisioning compensates). Anything still unfinished
is found again by the reconciler's stuck-step sweep, since the store, not the queue, is the
record of work.
"""

from __future__ import annotations

import logging
import time

from celery import Task
from kombu.exceptions import KombuError

from leases.errors import DomainError, PermanentError, TemporaryError
from workflows import outbox, sweeps
from workflows.celery_app import app
from workflows.metrics import STEP_OUTCOMES, STEP_SECONDS
from workflows.runtime import Runtime, current
from workflows.steps import extending, moving, placing, provisioning, reclaiming

logger = logging.getLogger(__name__)

MAX_RETRIES = 6
# A Retry-After is honoured up to ten minutes: a countdown near the broker's visibility
# timeout (an hour on Redis) would have the task delivered twice.
MAX_RETRY_AFTER_S = 600.0


def _backoff(task: Task, exc: TemporaryError) -> float:
    if exc.delay is not None:
        return min(MAX_RETRY_AFTER_S, exc.delay)
    return min(60.0, 2.0**task.request.retries)


def _retrying(task: Task, fn, *args):
    step = task.name.removeprefix("gpulease.")
    started = time.perf_counter()
    try:
        result = fn(current(), *args)
    except TemporaryError as exc:
        if task.request.retries >= MAX_RETRIES:
            STEP_OUTCOMES.labels(step, "failed").inc()
            raise
        STEP_OUTCOMES.labels(step, "retried").inc()
        logger.warning(
            "task.retry task=%s args=%s attempt=%d error=%s", task.name, args, task.request.retries + 1, exc,
            extra={"event": "task.retry", "task": task.name, "task_args": list(args)},
        )
        raise task.retry(exc=exc, countdown=_backoff(task, exc), max_retries=MAX_RETRIES) from exc
    except DomainError as exc:
        # A refusal is an outcome, not a failure: the step has recorded it.
        STEP_OUTCOMES.labels(step, "refused").inc()
        logger.info("task.refused task=%s args=%s reason=%s", task.name, args, exc.message)
        return None
    except Exception:
        STEP_OUTCOMES.labels(step, "failed").inc()
        raise
    finally:
        STEP_SECONDS.labels(step).observe(time.perf_counter() - started)
    STEP_OUTCOMES.labels(step, "ok").inc()
    return result


@app.task(bind=True, name="gpulease.place", acks_late=True)
def place(self: Task, lease_id: str):
    """Place an approved or waitlisted lease."""
    return _retrying(self, placing.place_lease, lease_id)


@app.task(bind=True, name="gpulease.provision", acks_late=True)
def provision(self: Task, lease_id: str):
    """Create the lease's namespace bundle; compensate once retries are spent."""
    try:
        return _retrying(self, provisioning.provision, lease_id)
    except TemporaryError as exc:
        return provisioning.compensate(current(), lease_id, reason=f"gave up after retries: {exc}")


@app.task(bind=True, name="gpulease.reclaim", acks_late=True)
def reclaim(self: Task, lease_id: str):
    """Delete a reclaiming lease's namespace and release its capacity; tell the admins when
    that is refused or its retries are spent (the stuck-step sweep tries again later)."""
    try:
        return _retrying(self, reclaiming.reclaim, lease_id)
    except (TemporaryError, PermanentError) as exc:
        return reclaiming.reclaim_stuck(current(), lease_id, reason=str(exc))


@app.task(bind=True, name="gpulease.refresh", acks_late=True)
def refresh(self: Task, lease_id: str):
    """Re-apply a running lease's bundle (expiry annotation, drift)."""
    return _retrying(self, extending.refresh, lease_id)


@app.task(bind=True, name="gpulease.move_node", acks_late=True)
def move_node(self: Task, move_id: int):
    """Advance one node move between tiers, re-queueing itself while the operator works."""
    progress = _retrying(self, moving.advance_move, move_id)
    if progress is not None and progress.again:
        # Short polls only: the move's own timeout, kept in the store, bounds the whole wait.
        move_node.si(move_id).apply_async(countdown=progress.delay)
    return progress.step if progress else None


@app.task(bind=True, name="gpulease.drain_node", acks_late=True)
def drain_node(self: Task, cluster: str, node: str, to_tier: str, actor: str = ""):
    """Drain a node so it empties for a move to another tier, or cordon it for an admin; tell
    the admins when an admin's drain is refused or its retries are spent."""
    try:
        return _retrying(self, moving.drain, cluster, node, to_tier, actor)
    except (TemporaryError, PermanentError) as exc:
        if to_tier:
            raise  # the placer's: its drains are checked again on every placement
        return moving.drain_failed(current(), cluster, node, actor=actor, error=exc,
                                   key=f"drain_failed:{self.request.id}")


@app.task(bind=True, name="gpulease.undrain_node", acks_late=True)
def undrain_node(self: Task, cluster: str, node: str, reason: str = ""):
    """Give a drained node back to its pool (`reason`: why, when not just unneeded)."""
    return _retrying(self, moving.undrain, cluster, node, reason)


@app.task(bind=True, name="gpulease.deliver", acks_late=True)
def deliver(self: Task):
    """Send unsent notifications."""
    return outbox.deliver_pending(current())


@app.task(bind=True, name="gpulease.wake_waitlist", acks_late=True)
def wake_waitlist(self: Task, cluster: str | None = None):
    """Try to place waitlisted leases in order."""
    return _retrying(self, sweeps.wake_waitlist, cluster)


@app.task(bind=True, name="gpulease.sweep", acks_late=True)
def sweep(self: Task):
    """Run the minute sweep."""
    report = sweeps.sweep(current())
    return {k: len(v) for k, v in vars(report).items()}


@app.task(bind=True, name="gpulease.reconcile", acks_late=True)
def reconcile(self: Task):
    """Compare store and clusters: repair drift, report orphans."""
    from workflows import reconcile as reconciler

    return _retrying(self, reconciler.reconcile_all)


TASKS = {
    "place": place,
    "provision": provision,
    "reclaim": reclaim,
    "refresh": refresh,
    "move_node": move_node,
    "drain_node": drain_node,
    "undrain_node": undrain_node,
    "deliver": deliver,
    "wake_waitlist": wake_waitlist,
    "sweep": sweep,
    "reconcile": reconcile,
}


def enqueue_with_celery(name: str, *args: object) -> None:
    """Send a task by its short name, as an immutable signature; never fail the caller.

    The step that enqueues has already committed its state, so if the broker is down the work
    is not lost: the minute sweep finds the unfinished step (or the unsent message) and queues
    it again. Failing here would tell a user their request failed when it was recorded.
    """
    try:
        TASKS[name].si(*args).apply_async()
    except (KombuError, OSError) as exc:
        logger.warning(
            "task.enqueue_failed task=%s args=%s error=%s (the sweep will retry)",
            name,
            args,
            exc,
            extra={"event": "task.enqueue_failed", "task": name, "task_args": [str(a) for a in args]},
        )


def use_celery(rt: Runtime) -> Runtime:
    """Make the runtime enqueue follow-up steps through Celery."""
    rt.enqueue = enqueue_with_celery
    return rt
