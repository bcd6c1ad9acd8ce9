"""The one place the control plane talks to the broker beyond an app calling its own tasks.

Starting a higher app's task by name, publishing chords, markers that show a dispatched chord is still in Redis,
cancel flags the workers read, remote control of the workers (add or cancel a queue), and the machines' broker
users.
"""

import base64
import functools
import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import quote, urlsplit, urlunsplit

from celery import Signature
from celery import current_app as app
from celery.utils import uuid
from redis.exceptions import LockError

from worker.protocol import CANCELLED_KEY, CHORD_QUEUE, CONTROL_QUEUE, EVENTS_KEY, RUN_CASE_TASK, worker_hostname
from worker.transport import unacked_keys

logger = logging.getLogger(__name__)
_DISPATCH_KEY = "testhub:dispatch:{task_id}"
_DISPATCH_LOCK_KEY = "testhub:dispatch-lock:{queue}"
_DISPATCH_AGAIN_KEY = "testhub:dispatch-again:{queue}"
_DISPATCH_LOCK_SECONDS = 30
# Since when the control plane has been able to hear the workers (recording events), as a Unix time. Gone
# after a Redis restart, and set again when recording resumes after an outage: a node is only judged silent
# when the control plane itself could have heard it.
_HEARING_SINCE_KEY = "testhub:hearing-since"


# Tasks an app starts in an app built on it, which it must not import (execution starts reporting's build).
BUILD_REPORT_TASK = "reporting.build_report"


def _redis():
    return app.backend.client


def enqueue(task_name: str, *args: object) -> None:
    """Start a control-plane task of an app above the caller's, by its name constant."""
    app.send_task(task_name, args=args, queue=CONTROL_QUEUE)


def chord_open(*, task_id: int, size: int) -> str:
    """A chord of `size` parts published later, a few at a time (chord_parts_publish): the worker that ends the
    last part sends its callback, the task's report build. Returns its group id."""
    group_id = uuid()
    app.backend.set_chord_size(group_id, size)
    _redis().set(_DISPATCH_KEY.format(task_id=task_id), group_id, ex=app.conf.result_expires)
    return group_id


def chord_group(task_id: int) -> str | None:
    """The group id of the task's open chord; None once Redis has lost it."""
    group_id = _redis().get(_DISPATCH_KEY.format(task_id=task_id))
    return group_id.decode() if group_id is not None else None


def chord_resize(*, task_id: int, size: int) -> None:
    """The chord will have only `size` parts (the task was cancelled before the rest were published)."""
    group_id = chord_group(task_id)
    if group_id is not None:
        app.backend.set_chord_size(group_id, size)


@dataclass(frozen=True)
class ChordPart:
    """One run_case message of a task's chord: its `index` among the chord's parts."""

    task_id: int
    group_id: str
    index: int
    case_id: int
    job: dict


def chord_parts_publish(*, queue: str, priority: int, parts: list[ChordPart]) -> None:
    """run_case messages on `queue`, in the order given (of one task's chord or of several)."""
    callbacks: dict[int, Signature] = {}
    with app.producer_or_acquire() as producer:
        for part in parts:
            if part.task_id not in callbacks:
                callbacks[part.task_id] = _report_callback(part.task_id)
            app.send_task(
                RUN_CASE_TASK,
                args=(part.job,),
                queue=queue,
                priority=priority,
                producer=producer,
                group_id=part.group_id,
                group_index=part.index,
                chord=callbacks[part.task_id],
                add_to_parent=False,
            )


def _report_callback(task_id: int) -> Signature:
    # Sent by the worker that ends the last case, so it goes to the one control queue a worker may write to,
    # where the control worker runs nothing but report builds.
    return app.signature(BUILD_REPORT_TASK, args=(task_id,), queue=CHORD_QUEUE, immutable=True)


@contextmanager
def dispatch_turn(queue: str) -> Iterator[bool]:
    """One dispatcher at a time per capability queue, across every control process: True when this caller has
    the turn. A caller without it leaves word that the holder should look again (dispatch_again_take)."""
    client = _redis()
    lock = client.lock(_DISPATCH_LOCK_KEY.format(queue=queue), timeout=_DISPATCH_LOCK_SECONDS)
    if not lock.acquire(blocking=False):
        client.set(_DISPATCH_AGAIN_KEY.format(queue=queue), 1, ex=_DISPATCH_LOCK_SECONDS)
        yield False
        return
    try:
        yield True
    finally:
        try:
            lock.release()
        except LockError:  # held past its timeout and taken by another: that one goes on
            logger.warning("the dispatch lock of %s expired while held", queue)


def dispatch_again_take(queue: str) -> bool:
    """Whether someone asked for another look at `queue` meanwhile (and the request is taken)."""
    return bool(_redis().delete(_DISPATCH_AGAIN_KEY.format(queue=queue)))


def publish_cases(*, queue: str, priority: int, jobs: list[dict]) -> None:
    """run_case messages on `queue`, each on its own (not part of a chord)."""
    with app.producer_or_acquire() as producer:
        for job in jobs:
            app.send_task(RUN_CASE_TASK, args=(job,), queue=queue, priority=priority, producer=producer)


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


def events_unread() -> int:
    """Worker events waiting for a recorder."""
    return _redis().llen(EVENTS_KEY)


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


def nodes_held_cases(*, nodes: list[str]) -> dict[str, set[int]]:
    """For each node, the cases whose messages its worker took and has not acknowledged (its own record)."""
    with _redis().pipeline(transaction=False) as pipe:
        for node in nodes:
            pipe.hvals(unacked_keys(node)["unacked_key"])
        records = pipe.execute()
    return {
        node: {case for raw in record if (case := _case_id_of(raw))}
        for node, record in zip(nodes, records, strict=True)
    }


def node_held_cases_forget(*, node: str, case_ids: set[int]) -> None:
    """Drop these cases' messages from a dead node's record: the control plane has queued them afresh, so
    nothing must hand the old messages out too."""
    keys = unacked_keys(node)
    client = _redis()
    tags = [tag for tag, raw in client.hscan_iter(keys["unacked_key"]) if _case_id_of(raw) in case_ids]
    if tags:
        with client.pipeline() as pipe:
            pipe.hdel(keys["unacked_key"], *tags)
            pipe.zrem(keys["unacked_index_key"], *tags)
            pipe.execute()


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


def cancel_consumer(*, node: str, queue: str, confirm: bool = False) -> None:
    """Tell the node's worker to stop consuming `queue`; with `confirm`, wait (a second at most) until it has."""
    logger.info("telling node %s to stop consuming %s", node, queue)
    app.control.cancel_consumer(queue, destination=[worker_hostname(node)], reply=confirm, timeout=1)


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


# --- the broker users of test machines ------------------------------------------------------------------------

# What a worker runs against Redis (kombu's transport, Celery's result backend and remote control), nothing
# more: no KEYS/SCAN, FLUSH*, CONFIG, CLIENT KILL, ACL or SCRIPT.
_WORKER_COMMANDS = [
    "+@connection", "+select", "+info", "+client|setname", "+client|id",
    "+brpop", "+lpush", "+rpush", "+llen", "+lrange", "+ltrim",
    "+sadd", "+smembers", "+srem",
    "+zadd", "+zrem", "+zrange", "+zrangebyscore", "+zrevrangebyscore", "+zcount",
    "+hset", "+hget", "+hdel",
    "+get", "+set", "+setex", "+del", "+exists", "+expire", "+pexpire", "+mget", "+incr", "+incrby", "+decr",
    "+multi", "+exec", "+watch", "+unwatch", "+discard",
    "+subscribe", "+unsubscribe", "+psubscribe", "+punsubscribe",
    "+eval", "+evalsha", "+script|load",  # redis-py's locks (kombu's mutex); a script's commands obey the ACL too
]  # fmt: skip
_PRIORITY_SEPARATOR = "\x06\x16"


def _queue(queue: str) -> list[str]:
    """A kombu queue is a list per priority level: the queue's own key, and the key with a level appended."""
    return [f"~{queue}", f"~{queue}{_PRIORITY_SEPARATOR}?"]


def node_user_rules(*, node: str, queues: set[str]) -> list[str]:
    """The ACL of a test machine's broker user: its own queues and its own record of the messages it holds, the
    events list (append only), the cancelled set (read only), the report callback queue (append only), and
    Celery's bookkeeping; nothing of the control plane's, nothing of another machine's.

    Redis 7 selectors, "(keys commands)", tie a command to the keys and channels it may touch: a machine may
    LPUSH onto the events list, but neither read, trim nor delete it.
    """
    db = url_db(app.conf.broker_url)  # remote control is heard on the db it is sent on: the control plane's
    own = sorted({f"node.{node}", f"{worker_hostname(node)}.celery.pidbox", *queues})
    keys = [
        *(rule for queue in own for rule in _queue(queue)),
        *(f"~{key}" for key in unacked_keys(node).values()),
        "%R~_kombu.binding.*",  # routing tables: read, and declare its own queues in them
        *(f"~_kombu.binding.{queue}" for queue in [*own, CHORD_QUEUE, "celery.pidbox", "celeryev"]),
        "~celery-task-meta-*",  # results and chord counters
        "~celery-taskset-meta-*",
    ]
    listens = [f"&/{db}.celery.pidbox"]  # remote control from the control plane; it may not speak on it
    append_only = [
        EVENTS_KEY,
        CHORD_QUEUE,
        f"{CHORD_QUEUE}{_PRIORITY_SEPARATOR}?",
        "*.reply.celery.pidbox",
        "celeryev.*",
    ]
    selectors = [
        "(" + " ".join(f"%W~{key}" for key in append_only) + " +lpush +rpush +llen)",  # (llen: publishing declares)
        f"(%R~{CANCELLED_KEY} +zrange)",
        f"(+publish &/{db}.celeryev/* &celery-task-meta-*)",  # task events for Flower, and results
    ]
    return ["resetkeys", "resetchannels", "-@all", *_WORKER_COMMANDS, *keys, *listens, *selectors]


_USER_DIGEST_KEY = "testhub:broker-user:{username}"


def node_user_set(*, username: str, password: str, rules: list[str], digest: str) -> None:
    """Create or replace a test machine's broker user; `digest` marks which rules it now has."""
    _redis().execute_command("ACL", "SETUSER", username, "reset", "on", f">{password}", *rules)
    _redis().set(_USER_DIGEST_KEY.format(username=username), digest)


def node_user_current(*, username: str, digest: str) -> bool:
    """Whether the user exists with the rules `digest` stands for (both are gone after a Redis restart)."""
    return _redis().get(_USER_DIGEST_KEY.format(username=username)) == digest.encode()


def node_user_delete(*, username: str) -> None:
    with _redis().pipeline() as pipe:
        pipe.execute_command("ACL", "DELUSER", username)
        pipe.delete(_USER_DIGEST_KEY.format(username=username))
        pipe.execute()


def broker_users_supported() -> bool:
    """ACL selectors and read- or write-only keys need Redis 7 (the embedded demo's Redis is 6.2)."""
    return _major_version(app.conf.broker_url) >= 7


@functools.cache
def _major_version(broker_url: str) -> int:
    return int(str(_redis().info("server").get("redis_version", "0")).split(".")[0])


def url_with_user(url: str, *, username: str, password: str) -> str:
    """`url` signing in as `username`."""
    parts = urlsplit(url)
    netloc = f"{quote(username, safe='')}:{quote(password, safe='')}@{parts.hostname}"
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


def url_db(url: str) -> int:
    path = urlsplit(url).path.strip("/")
    return int(path) if path.isdigit() else 0
