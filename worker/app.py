"""The worker's Celery app and its one task, `run_case`."""

import logging
import os
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, TypeAlias, TypedDict, cast

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
    JSONObject,
    celery_settings,
    clean_text,
    event_envelope,
)
from worker.transport import unacked_keys

# For annotations only: imported at run time, they would make importing this module load more of Celery.
if TYPE_CHECKING:
    from celery import Task
    from celery.backends.redis import RedisBackend
    from celery.worker.consumer.consumer import Consumer as CeleryConsumer
    from kombu.asynchronous.timer import Entry

    from worker.consumer import Consumer

logger = logging.getLogger("testhub.worker")
HEARTBEAT_SECONDS = 5
# The longest text (a log, a reason) one event carries; the runner keeps a log's tail within it already.
EVENT_TEXT_LIMIT = 256 * 1024


def _now() -> str:
    return datetime.now(UTC).isoformat()


class CaseResult(TypedDict):
    """What `run_case` returns: its Celery result, which its task's chord collects."""

    case: int
    status: str


# `run_case` as Celery binds it (bind=True): called with one job message, it returns a CaseResult.
RunCaseTask: TypeAlias = "Task[[JSONObject], CaseResult]"


def create_app(
    *,
    node: str,
    node_key: str,
    broker_url: str,
    manifest_path: Path,
    workdir: Path,
    slots: int = 1,
    visibility_timeout: int = 4 * 3600,
    result_expires: int = 7 * 24 * 3600,
    case_env: tuple[str, ...] = (),
) -> Celery:
    app = Celery("testhub-worker")
    app.conf.update(
        celery_settings(broker_url=broker_url, visibility_timeout=visibility_timeout, result_expires=result_expires)
    )
    # A record of its own of the messages it holds, and no handing out of others' (worker/transport.py).
    app.conf.broker_transport = "worker.transport:Transport"
    app.conf.broker_transport_options = {**app.conf.broker_transport_options, **unacked_keys(node)}
    app.conf.update(
        testhub_node=node,
        testhub_node_key=node_key,
        testhub_manifest=Path(manifest_path),
        testhub_workdir=Path(workdir),
        testhub_slots=slots,
        testhub_case_env=runner.case_environment(case_env),
    )
    app.task(name=RUN_CASE_TASK, bind=True)(run_case)
    app.steps["consumer"].add(HeartbeatStep)
    return app


def _redis_backend(app: Celery) -> "RedisBackend":
    """The result backend: the broker's own Redis (celery_settings), whose client reaches EVENTS_KEY and
    CANCELLED_KEY. (celery-types types app.backend as the base Backend, which has no client.)"""
    return cast("RedisBackend", app.backend)


def publish_event(app: Celery, message: JSONObject, *, retry: bool = True) -> None:
    """Push a report for the control plane onto the broker's Redis.

    With `retry`, it waits out a broker outage of any length (what a case finished meanwhile is reported
    once Redis is back); without, one attempt (a heartbeat: the next one follows in seconds).
    One LPUSH, a tenth of what a full Celery message costs: a case sends one or two of these.
    """
    payload = event_envelope(node=app.conf.testhub_node, key=app.conf.testhub_node_key, message=message)
    delay = 0.2
    while True:
        try:
            _redis_backend(app).client.lpush(EVENTS_KEY, payload)
            return
        except redis.RedisError:
            if not retry:
                raise
            if delay == 0.2:
                logger.warning("broker unreachable; keeping the event until it is back")
            time.sleep(delay)
            delay = min(delay * 2, 5)


class CancelledTasks:
    """The cancelled tasks, from a copy of the broker's set at most half a second old.

    One Redis read per process and half second instead of one per case and poll. While the broker is
    away the last copy stands: a case is never stopped, nor its process orphaned, because Redis is down.
    """

    def __init__(self) -> None:
        self.ids: frozenset[int] = frozenset()
        self.read_at = float("-inf")
        self.unreachable = False

    def contains(self, app: Celery, task_id: int) -> bool:
        if time.monotonic() - self.read_at > CANCELLED_REFRESH_SECONDS:
            self.read_at = time.monotonic()
            try:
                members = _redis_backend(app).client.zrange(CANCELLED_KEY, 0, -1)
            except redis.RedisError:
                if not self.unreachable:
                    logger.warning("broker unreachable: cancellations are read again once it is back")
                self.unreachable = True
            else:
                self.ids, self.unreachable = frozenset(int(member) for member in members), False
        return task_id in self.ids


_cancelled = CancelledTasks()


class CaseRun:
    """One attempt at one case on this machine, reporting its start (if it runs a while) and its end."""

    def __init__(self, task: RunCaseTask, job: JSONObject):
        self.task = task
        self.app: Celery = task.app
        self.case = CaseJob.from_message(job)
        self.node: str = self.app.conf.testhub_node
        self.started_at: str | None = None
        self.announced = False

    def report(self, kind: str, **fields: str | int | bool | None) -> None:
        case = self.case
        event = CaseEvent(
            kind=kind, case_id=case.case_id, task_id=case.task_id, node=self.node, at=_now(), token=case.token
        )
        for name, value in fields.items():
            setattr(event, name, clean_text(value, limit=EVENT_TEXT_LIMIT) if isinstance(value, str) else value)
        publish_event(self.app, event.to_message())

    def announce(self) -> None:
        self.report("started", started_at=self.started_at)
        self.announced = True

    def finish(self, status: str, *, exit_code: int | None = None, log: str = "") -> CaseResult:
        self.report(
            "finished",
            status=status,
            exit_code=exit_code,
            log=log,
            started_at=self.started_at,
            announced=self.announced,
        )
        return {"case": self.case.case_id, "status": status}

    def is_cancelled(self) -> bool:
        return _cancelled.contains(self.app, self.case.task_id)

    def command(self, workdir: Path) -> list[str]:
        case = self.case
        paths = manifest.resolve(
            self.app.conf.testhub_manifest,
            product=case.product,
            product_version=case.product_version,
            tool=case.tool,
            tool_version=case.tool_version,
        )
        return runner.build_argv(
            case.command,
            case=case.case_name,
            product_path=paths.product_path,
            tool_path=paths.tool_path,
            workdir=str(workdir),
        )

    def infrastructure_error(self, problem: Exception) -> CaseResult:
        """This machine cannot run the case: say so. The control plane takes the capability from this node and
        hands the case to another while attempts remain."""
        reason = f"{self.node}: {problem}"
        logger.warning("case %s of task %s: infrastructure error: %s", self.case.case_id, self.case.task_id, reason)
        self.report("infra_error", reason=reason, queue=self.case.queue)
        return {"case": self.case.case_id, "status": "infra_error"}


def run_case(self: RunCaseTask, job: JSONObject) -> CaseResult:
    """Run one case and report it. A failing or erroring case is a result, never an exception."""
    attempt = CaseRun(self, job)
    if attempt.is_cancelled():
        return attempt.finish("cancelled")
    attempt.started_at = _now()
    workdir: Path = attempt.app.conf.testhub_workdir / f"slot-{os.getpid()}"  # a pool process runs one case at a time
    try:
        outcome = runner.run(
            attempt.command(workdir),
            workdir=workdir,
            timeout=attempt.case.timeout,
            should_stop=attempt.is_cancelled,
            on_running=attempt.announce,
            env=attempt.app.conf.testhub_case_env,
        )
    except (manifest.MissingInstall, runner.CommandNotFound) as problem:
        return attempt.infrastructure_error(problem)
    except Exception:  # anything else (a broken command template, a full disk) is this case's error, not the chord's
        logger.exception("case %s of task %s could not be run", attempt.case.case_id, attempt.case.task_id)
        return attempt.finish("error", log=f"[TestHub: the case could not be run]\n{traceback.format_exc()}")
    return attempt.finish(outcome.status, exit_code=outcome.exit_code, log=outcome.log)


class HeartbeatStep(bootsteps.StartStopStep):
    """Tell the control plane every few seconds that this node is alive, what it runs and which queues it reads."""

    requires = ("celery.worker.consumer.tasks:Tasks",)

    def __init__(self, consumer: "Consumer", **kwargs: object) -> None:
        super().__init__(consumer, **kwargs)
        self.timer_ref: Entry | None = None

    def start(self, consumer: "Consumer") -> None:
        self.send(consumer)
        self.timer_ref = consumer.timer.call_repeatedly(HEARTBEAT_SECONDS, self.send, (consumer,), priority=10)

    def stop(self, consumer: "Consumer") -> None:
        if self.timer_ref:
            self.timer_ref.cancel()
            self.timer_ref = None

    def send(self, consumer: "Consumer") -> None:
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
            publish_event(app, beat.to_message(), retry=False)
        except Exception:  # a missed heartbeat must never stop the worker; the next one is due in seconds
            logger.warning("heartbeat not sent: the broker is unreachable")


@worker_ready.connect
def _announce(sender: "CeleryConsumer | None" = None, **kwargs: object) -> None:
    logger.info("TestHub worker %s ready (pid %s)", sender.hostname if sender else "?", os.getpid())
