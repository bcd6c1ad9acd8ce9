"""The control plane's Celery app: dispatch, recording, reports, liveness and reconciling run on queue `control`.

The project package wires the apps together here: their periodic tasks, and the recorder every control worker
runs.
"""

import logging
import os

from celery import Celery, Task, signals

from messaging.broker import BUILD_REPORT_TASK
from worker.protocol import CHORD_QUEUE, CONTROL_QUEUE

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "testhub.settings")
logger = logging.getLogger(__name__)


class ControlTask(Task):
    """A control-plane task. Test machines may write to one control queue (CHORD_QUEUE, where the worker
    that ends a task's last case sends the report callback): nothing but report builds runs from it."""

    def __call__(self, *args, **kwargs):
        queue = (getattr(self.request, "delivery_info", None) or {}).get("routing_key")
        if queue == CHORD_QUEUE and self.name != BUILD_REPORT_TASK:
            logger.warning("refused %s from %s: only report builds are taken from that queue", self.name, queue)
            return None
        return super().__call__(*args, **kwargs)


app = Celery("testhub", task_cls=ControlTask)


@signals.celeryd_after_setup.connect
def _report_callbacks_too(sender, instance, **kwargs):
    """A control worker also takes the report callbacks the test machines send."""
    if CONTROL_QUEUE in instance.app.amqp.queues.consume_from:
        instance.app.amqp.queues.select_add(CHORD_QUEUE)


def configure(celery_app: Celery) -> None:
    from django.conf import settings

    from worker.protocol import celery_settings

    celery_app.conf.update(
        celery_settings(
            broker_url=settings.REDIS_URL,
            visibility_timeout=settings.TESTHUB_VISIBILITY_TIMEOUT,
            result_expires=settings.TESTHUB_RESULT_EXPIRES,
        )
    )
    # A web request that enqueues work gives up on a missing broker within seconds (workers reconnect
    # on their own schedule, broker_connection_max_retries).
    celery_app.conf.broker_transport_options = {
        **celery_app.conf.broker_transport_options,
        "max_retries": 2,
        "interval_start": 0,
        "interval_step": 0.5,
        "interval_max": 1,
    }
    celery_app.conf.update(
        task_routes={
            "execution.*": {"queue": CONTROL_QUEUE},
            "reporting.*": {"queue": CONTROL_QUEUE},
            "nodes.*": {"queue": CONTROL_QUEUE},
            "accounts.*": {"queue": CONTROL_QUEUE},
        },
        beat_schedule=_periodic_tasks(settings),
        worker_hijack_root_logger=False,
        beat_scheduler="testhub.beat:QuietDatabaseScheduler",
        timezone=settings.TIME_ZONE,
        broker_connection_timeout=3,  # a request that enqueues work must not hang on a missing broker
    )


def _periodic_tasks(settings) -> dict:
    """What beat starts. A message not taken before its next one is due expires: a control worker that was away
    does not come back to a pile of them."""

    def every(seconds: int) -> dict:
        return {"schedule": float(seconds), "options": {"expires": float(seconds)}}

    return {
        "liveness": {"task": "nodes.sweep_liveness", **every(settings.TESTHUB_LIVENESS_SWEEP_SECONDS)},
        "reconcile nodes": {"task": "nodes.reconcile", **every(settings.TESTHUB_RECONCILE_SECONDS)},
        "reconcile": {"task": "execution.reconcile", **every(settings.TESTHUB_RECONCILE_SECONDS)},
        "dispatch": {"task": "execution.dispatch", **every(settings.TESTHUB_DISPATCH_SECONDS)},
        "expired tokens": {"task": "accounts.delete_expired_tokens", **every(3600)},
    }


configure(app)
app.autodiscover_tasks()
# By name: the worker loads it once Django is set up (importing it here would load the models too early).
app.steps["worker"].add("execution.recorder:RecorderStep")
