"""The one place the control plane talks to the broker beyond plain task calls.

Publishing chords, markers that show a dispatched chord is still in Redis, cancel flags the
workers read, and remote control of the workers (add or cancel a queue).
"""

import base64
import json
import logging
import time

from celery import chord

from testhub.celery import app
from worker.protocol import CANCELLED_KEY, CONTROL_QUEUE, RUN_CASE_TASK, worker_hostname

logger = logging.getLogger(__name__)
_DISPATCH_KEY = "testhub:dispatch:{task_id}"
# Since when the control plane has been able to hear the workers (recording events), as a Unix time. Gone
# after a Redis restart, and set again when recording resumes after an outage: a node is only judged silent
# when the control plane itself could have heard it.
_HEARING_SINCE_KEY = "testhub:hearing-since"


def _redis():
    return app.backend.client


def publish_case_chord(*, task_id: int, queue: str, priority: int, jobs: list[dict]) -> str:
    """One run_case message per job on `queue`, then reporting.build_report on the control queue."""
    header = [app.signature(RUN_CASE_TASK, args=(job,), queue=queue, priority=priority) for job in jobs]
    callback = app.signature("reporting.build_report", args=(task_id,), queue=CONTROL_QUEUE, immutable=True)
    result = chord(header)(callback)
    group_id = result.parent.id if result.parent is not None else result.id
    _redis().set(_DISPATCH_KEY.format(task_id=task_id), group_id, ex=app.conf.result_expires)
    return group_id


def queue_depths(queues: list[str]) -> dict[str, int]:
    """Messages waiting in each queue, all priority levels together (Flower shows no such figure)."""
    options = app.conf.broker_transport_options
    separator, steps = options.get("sep", "\x06\x16"), options.get("priority_steps", [0])
    with _redis().pipeline(transaction=False) as pipe:
        for queue in queues:
            for step in steps:
                pipe.llen(f"{queue}{separator}{step}" if step else queue)
        lengths = pipe.execute()
    per_queue = len(steps)
    return {queue: sum(lengths[i * per_queue : (i + 1) * per_queue]) for i, queue in enumerate(queues)}


def dispatch_marker_exists(task_id: int) -> bool:
    """False once Redis has lost the chord (restart without data, expiry) or never got all of it."""
    return bool(_redis().exists(_DISPATCH_KEY.format(task_id=task_id)))


def restore_expired_unacked() -> None:
    """Hand out again the case messages held by workers that died (unacked past the visibility timeout).

    Kombu does this by itself from each consumer, but only every 100 s or so; the reconciler calls this
    so a case lost with its machine comes back within one reconcile interval.
    """
    with app.connection_for_read() as connection:
        connection.default_channel.qos.restore_visible(num=10_000)


def case_messages_restore(*, case_ids: set[int]) -> set[int]:
    """Put back on their queues, now, the messages of these cases that a worker took and never acknowledged
    (its machine died). Without this, Redis hands them out again only after the visibility timeout."""
    restored: set[int] = set()
    with app.connection_for_write() as connection:
        channel = connection.default_channel
        client = channel.client
        for tag, raw in client.hscan_iter(channel.unacked_key):
            if _case_id_of(raw) in case_ids:
                channel.qos.restore_by_tag(tag, client)
                restored.add(_case_id_of(raw))
    return restored


def _case_id_of(unacked_entry: bytes) -> int | None:
    """The case id in a run_case message as kombu keeps it unacknowledged: [message, exchange, routing key]."""
    try:
        message = json.loads(unacked_entry)[0]
        if message["headers"].get("task") != RUN_CASE_TASK:
            return None
        body = message["body"]
        if message["properties"].get("body_encoding") == "base64":
            body = base64.b64decode(body)
        args = json.loads(body)[0]
        return int(args[0]["case_id"])
    except (ValueError, KeyError, IndexError, TypeError):
        return None


def hearing_restored(*, client=None, at: float | None = None) -> None:
    """The recorder can hear the workers again (it started, or an outage ended), since `at` (default: now)."""
    (client or _redis()).set(_HEARING_SINCE_KEY, time.time() if at is None else at)


def heard_for_at_least(seconds: float) -> bool:
    """Whether the control plane has been able to hear the workers for the last `seconds`."""
    since = _redis().get(_HEARING_SINCE_KEY)
    return since is not None and time.time() - float(since) >= seconds


def flag_cancelled(task_id: int) -> None:
    """Workers check this before they start a case and while it runs; entries older than results expire."""
    now = time.time()
    with _redis().pipeline() as pipe:
        pipe.zadd(CANCELLED_KEY, {str(task_id): now})
        pipe.zremrangebyscore(CANCELLED_KEY, 0, now - app.conf.result_expires)
        pipe.execute()


def add_consumer(*, node: str, queue: str) -> None:
    logger.info("telling node %s to consume %s", node, queue)
    app.control.add_consumer(queue, destination=[worker_hostname(node)], reply=False)


def cancel_consumer(*, node: str, queue: str) -> None:
    logger.info("telling node %s to stop consuming %s", node, queue)
    app.control.cancel_consumer(queue, destination=[worker_hostname(node)], reply=False)


def ping(*, node: str, timeout: float = 1.0) -> bool:
    """Whether the node's worker answers a remote-control ping now."""
    replies = app.control.ping(destination=[worker_hostname(node)], timeout=timeout)
    return any(worker_hostname(node) in reply for reply in replies)


def worker_uptime(*, node: str, timeout: float = 1.0) -> float | None:
    """Seconds since the node's worker process started, or None when it does not answer."""
    replies = app.control.inspect(destination=[worker_hostname(node)], timeout=timeout).stats() or {}
    stats = replies.get(worker_hostname(node))
    return float(stats["uptime"]) if stats and "uptime" in stats else None


def machine_lock(*, node_id: int, timeout: int):
    """One SSH operation at a time per machine, across every control process; freed after `timeout` s if
    its holder died."""
    return _redis().lock(f"testhub:machine-lock:{node_id}", timeout=timeout)
