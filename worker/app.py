"""The worker's Celery app and its one task, `run_case`."""

import json
import logging
import os
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path

import redis
from celery import Celery, bootsteps
from celery.signals import worker_ready

from worker import manifest, release, runner
from worker.protocol import (
    CANCELLED_KEY,
    CANCELLED_REFRESH_SECONDS,
    EVENTS_KEY,
    PROTOCOL_VERSION,
    RUN_CASE_TASK,
    CaseEvent,
    CaseJob,
    Heartbeat,
    capability_queue,
    celery_settings,
)

logger = logging.getLogger("testhub.worker")
HEARTBEAT_SECONDS = 5


def _now() -> str:
    return datetime.now(UTC).isoformat()


def create_app(
    *,
    node: str,
    broker_url: str,
    manifest_path: Path,
    workdir: Path,
    slots: int = 1,
    visibility_timeout: int = 4 * 3600,
    result_expires: int = 7 * 24 * 3600,
) -> Celery:
    app = Celery("testhub-worker")
    app.conf.update(
        celery_settings(broker_url=broker_url, visibility_timeout=visibility_timeout, result_expires=result_expires)
    )
    app.conf.update(
        testhub_node=node, testhub_manifest=Path(manifest_path), testhub_workdir=Path(workdir), testhub_slots=slots
    )
    app.task(name=RUN_CASE_TASK, bind=True)(run_case)
    app.steps["consumer"].add(HeartbeatStep)
    return app


def publish_event(app: Celery, message: dict) -> None:
    """Push a report for the control plane onto the broker's Redis; retried until Redis takes it.

    One LPUSH, a tenth of what a full Celery message costs: a case sends one or two of these.
    """
    payload = json.dumps(message)
    delay = 0.2
    while True:
        try:
            app.backend.client.lpush(EVENTS_KEY, payload)
            return
        except redis.ConnectionError:
            logger.warning("broker unreachable; retrying the event in %.1f s", delay)
            time.sleep(delay)
            delay = min(delay * 2, 5)


_cancelled = {"ids": frozenset(), "read_at": float("-inf")}


def _is_cancelled(app: Celery, task_id: int) -> bool:
    """Whether the task was cancelled, from a copy of the cancelled set at most half a second old.

    One Redis read per process and half second instead of one per case and poll.
    """
    if time.monotonic() - _cancelled["read_at"] > CANCELLED_REFRESH_SECONDS:
        _cancelled["ids"] = frozenset(int(member) for member in app.backend.client.zrange(CANCELLED_KEY, 0, -1))
        _cancelled["read_at"] = time.monotonic()
    return task_id in _cancelled["ids"]


def run_case(self, job: dict) -> dict:
    """Run one case and report it. A failing or erroring case is a result, never an exception."""
    app, case = self.app, CaseJob.from_message(job)
    node = app.conf.testhub_node

    def report(kind: str, **fields) -> None:
        event = CaseEvent(kind=kind, case_id=case.case_id, task_id=case.task_id, node=node, at=_now(), **fields)
        publish_event(app, event.to_message())

    announced = False

    def announce() -> None:
        nonlocal announced
        report("started", started_at=started_at)
        announced = True

    def finish(status: str, *, exit_code=None, log="", started_at=None) -> dict:
        report("finished", status=status, exit_code=exit_code, log=log, started_at=started_at, announced=announced)
        return {"case": case.case_id, "status": status}

    if _is_cancelled(app, case.task_id):
        return finish("cancelled")
    started_at = _now()
    workdir = app.conf.testhub_workdir / f"slot-{os.getpid()}"  # one pool process runs one case at a time
    try:
        paths = manifest.resolve(
            app.conf.testhub_manifest,
            product=case.product,
            product_version=case.product_version,
            tool=case.tool,
            tool_version=case.tool_version,
        )
        argv = runner.build_argv(
            case.command,
            case=case.case_name,
            product_path=paths.product_path,
            tool_path=paths.tool_path,
            workdir=str(workdir),
        )
        outcome = runner.run(
            argv,
            workdir=workdir,
            timeout=case.timeout,
            should_stop=lambda: _is_cancelled(app, case.task_id),
            on_running=announce,
        )
    except (manifest.MissingInstall, runner.CommandNotFound) as problem:
        reason = f"{node}: {problem}"
        queue = capability_queue(
            product=case.product, product_version=case.product_version, tool=case.tool, tool_version=case.tool_version
        )
        logger.warning("case %s of task %s: infrastructure error: %s", case.case_id, case.task_id, reason)
        attempts_left = case.max_attempts - 1 - self.request.retries
        report("infra_error", reason=reason, queue=queue)
        _stop_consuming(app, queue=queue, hostname=self.request.hostname)
        if attempts_left > 0:
            raise self.retry(countdown=0, max_retries=case.max_attempts - 1) from None
        log = f"[TestHub: infrastructure error, no attempts left] {reason}\n"
        return finish("error", log=log, started_at=started_at)
    except Exception:  # anything else (a broken command template, a full disk) is this case's error, not the chord's
        logger.exception("case %s of task %s could not be run", case.case_id, case.task_id)
        return finish(
            "error", log=f"[TestHub: the case could not be run]\n{traceback.format_exc()}", started_at=started_at
        )
    return finish(outcome.status, exit_code=outcome.exit_code, log=outcome.log, started_at=started_at)


def _stop_consuming(app: Celery, *, queue: str, hostname: str) -> None:
    """This machine cannot serve the capability: stop taking its cases, so the retry goes to another node.

    Waits for the worker to confirm, so the retried message cannot come straight back here.
    """
    try:
        app.control.cancel_consumer(queue, destination=[hostname], reply=True, timeout=2)
    except Exception:
        logger.warning("could not stop consuming %s", queue, exc_info=True)


class HeartbeatStep(bootsteps.StartStopStep):
    """Tell the control plane every few seconds that this node is alive, what it runs and which queues it reads."""

    requires = {"celery.worker.consumer.tasks:Tasks"}

    def __init__(self, consumer, **kwargs):
        super().__init__(consumer, **kwargs)
        self.timer_ref = None

    def start(self, consumer):
        self.send(consumer)
        self.timer_ref = consumer.timer.call_repeatedly(HEARTBEAT_SECONDS, self.send, (consumer,), priority=10)

    def stop(self, consumer):
        if self.timer_ref:
            self.timer_ref.cancel()
            self.timer_ref = None

    def send(self, consumer):
        app = consumer.app
        queues = sorted(queue.name for queue in consumer.task_consumer.queues) if consumer.task_consumer else []
        beat = Heartbeat(
            node=app.conf.testhub_node,
            at=_now(),
            version=release(),
            protocol=PROTOCOL_VERSION,
            slots=app.conf.testhub_slots,
            queues=queues,
        )
        try:
            publish_event(app, beat.to_message())
        except Exception:  # a missed heartbeat must never stop the worker
            logger.exception("heartbeat not sent")


@worker_ready.connect
def _announce(sender=None, **kwargs):
    logger.info("TestHub worker %s ready (pid %s)", sender.hostname if sender else "?", os.getpid())
