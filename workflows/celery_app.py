"""The Celery app: broker, queues, reliability settings and the beat schedule.

One module-level app, configured by the composition root with `configure(broker_url=...)`:
Redis in production, `memory://` with an in-process worker for the embedded default.
"""

from __future__ import annotations

from celery import Celery

from workflows.queues import Queue

app = Celery("gpulease")

SWEEP_EVERY = 60.0
RECONCILE_EVERY = 300.0


def configure(*, broker_url: str, visibility_timeout: int = 3600) -> Celery:
    """Point the app at a broker and apply the task settings of DESIGN §6."""
    if app.conf.broker_url and app.conf.broker_url != broker_url:
        # Re-pointed in the same process (the embedded default, tests): drop the connection
        # and producer pools made for the old broker, or sends would still go there.
        app._pool = None
        app.amqp._producer_pool = None
    app.conf.update(
        broker_url=broker_url,
        broker_connection_retry_on_startup=True,
        # Logging is set up once, by gpulease.logs (GPULEASE_LOG_FORMAT/LEVEL): a worker that
        # replaced the root handler would drop the JSON lines and their event and id fields.
        worker_hijack_root_logger=False,
        # A task is acknowledged when it finishes, and put back if its worker dies mid-way;
        # the steps are idempotent, so running one twice is harmless.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        timezone="UTC",
        enable_utc=True,
        task_default_queue=Queue.LEASES.value,
        task_routes={
            "gpulease.move_node": {"queue": Queue.MOVES.value},
            "gpulease.drain_node": {"queue": Queue.MOVES.value},
            "gpulease.undrain_node": {"queue": Queue.MOVES.value},
            "gpulease.sweep": {"queue": Queue.SWEEPS.value},
            "gpulease.reconcile": {"queue": Queue.SWEEPS.value},
            "gpulease.deliver": {"queue": Queue.SWEEPS.value},
            "gpulease.wake_waitlist": {"queue": Queue.SWEEPS.value},
        },
        broker_transport_options={"visibility_timeout": visibility_timeout},
        beat_schedule={
            "sweep": {
                "task": "gpulease.sweep",
                "schedule": SWEEP_EVERY,
                # A sweep that could not start within its minute is dropped; the next one runs.
                "options": {"expires": SWEEP_EVERY - 5, "queue": Queue.SWEEPS.value},
            },
            "wake-waitlist": {
                "task": "gpulease.wake_waitlist",
                "schedule": SWEEP_EVERY,
                "options": {"expires": SWEEP_EVERY - 5, "queue": Queue.SWEEPS.value},
            },
            "reconcile": {
                "task": "gpulease.reconcile",
                "schedule": RECONCILE_EVERY,
                "options": {"expires": RECONCILE_EVERY - 10, "queue": Queue.SWEEPS.value},
            },
        },
    )
    import workflows.tasks  # noqa: F401  (registers the tasks on the app)

    return app
