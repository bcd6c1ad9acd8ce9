"""What the control plane and the workers say to each other: queue names, jobs and events.

This module is shared by both sides and imports nothing from either.
Bump PROTOCOL_VERSION when a message shape changes incompatibly: the control plane
refuses to route work to a worker that reports an older one.
"""

import hashlib
import hmac
import json
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any, TypeAlias

# 2: events are signed with the node's key and name the job's token; a failed install is retried by the
# control plane, not by the worker.
PROTOCOL_VERSION = 2

RUN_CASE_TASK = "testhub.run_case"
CONTROL_QUEUE = "control"
# The report callback of a task's chord, sent by the worker that ends its last case: the only control-plane
# queue a test machine may write to, and the control worker runs report builds only from it.
CHORD_QUEUE = "control.chord"
# Workers push events onto this Redis list (a worker's broker user may only append to it); the control
# plane's recorder moves them in batches to a processing list of its own, records them, then drops them.
# Each is an envelope "<node>\n<signature>\n<event JSON>": the signature (HMAC-SHA256 under the node's own
# key) tells the recorder which node really sent it.
EVENTS_KEY = "testhub:events"
WORKER_HOSTNAME_PREFIX = "testhub@"
# A sorted set: member = a cancelled task's id, score = when. Workers skip and stop that task's cases.
CANCELLED_KEY = "testhub:cancelled"
# How stale a worker's copy of that set may be: the longest a cancelled case may still start or run on.
CANCELLED_REFRESH_SECONDS = 0.5

_NOT_NAME_CHARS = re.compile(r"[^a-z0-9._]+")
# Text PostgreSQL refuses (NUL) and text no encoder takes (lone surrogates, e.g. from JSON "\ud800").
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
REPLACEMENT = "\ufffd"
# A message as JSON carries it between the two sides. Its values are whatever the sender put there, of any
# JSON type, so their types are the reader's to know (CaseJob.from_message, the control plane's recorder).
JSONObject: TypeAlias = dict[str, Any]


def slug(text: str) -> str:
    """Lowercase ASCII letters, digits, '.', '_' and '-' only: safe in queue names and paths.

    Different texts can share a slug ("calc", "Calc", "çalc"): the control plane stores each product's and
    tool's slug once, unique, and names queues and folders after the stored one.
    """
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return _NOT_NAME_CHARS.sub("-", ascii_text.lower()).strip("-.")


def capability_queue(*, product_slug: str, tool_slug: str) -> str:
    """`cap.<product slug>.<tool slug>`, e.g. cap.calc-1.0.pytest-8: readable in Flower, stable while work is
    queued (slugs never change), and free of control characters, so the Redis transport's priority separator
    never occurs in it."""
    return f"cap.{product_slug}.{tool_slug}"


def clean_text(text: str, *, limit: int | None = None) -> str:
    """Text any database and file format can hold: NUL and lone surrogates become U+FFFD; at most `limit`
    characters, keeping the end (where a log says how it ended)."""
    text = _UNSTORABLE.sub(REPLACEMENT, text)
    return text[-limit:] if limit is not None and len(text) > limit else text


def worker_hostname(node: str) -> str:
    return f"{WORKER_HOSTNAME_PREFIX}{node}"


def message_priority(task_priority: int) -> int:
    """Task priority 0 (lowest) to 9 (highest) as a Redis transport priority, where 0 is served first."""
    return 9 - task_priority


@dataclass(frozen=True)
class CaseJob:
    """One `run_case` message: everything a worker needs to run one case, nothing secret."""

    case_id: int
    task_id: int
    case_name: str
    product: str
    product_version: str
    tool: str
    tool_version: str
    command: str
    timeout: int
    queue: str = ""  # the capability queue it came from
    # Known only to the control plane and to the worker that receives this message; its events must carry it.
    token: str = ""

    def to_message(self) -> JSONObject:
        return dict(self.__dict__)  # flat fields: a plain copy, much cheaper than dataclasses.asdict

    @classmethod
    def from_message(cls, message: JSONObject) -> "CaseJob":
        return cls(**{name: message[name] for name in cls.__dataclass_fields__ if name in message})


@dataclass
class CaseEvent:
    """A worker's report about one case, pushed to EVENTS_KEY for the control plane to record.

    kind: "started", "finished" (status passed/failed/error/cancelled) or "infra_error"
    (the machine could not run the case; it is retried elsewhere while attempts remain).
    A case that ends quickly sends no "started": its "finished" says announced=False and carries started_at.
    """

    kind: str
    case_id: int
    task_id: int
    node: str
    at: str
    status: str = ""
    exit_code: int | None = None
    started_at: str | None = None
    log: str = ""
    reason: str = ""
    queue: str = ""
    announced: bool = False
    token: str = ""

    def to_message(self) -> JSONObject:
        return {"type": "case", **self.__dict__}


@dataclass
class Heartbeat:
    node: str
    at: str
    version: str
    protocol: int
    slots: int
    queues: list[str] = field(default_factory=list)

    def to_message(self) -> JSONObject:
        return {"type": "heartbeat", **self.__dict__, "queues": list(self.queues)}


def event_signature(key: str, payload: bytes) -> str:
    return hmac.new(key.encode(), payload, hashlib.sha256).hexdigest()


def event_envelope(*, node: str, key: str, message: JSONObject) -> bytes:
    """An event as a worker pushes it: signed with its node's key, so nobody else can speak for the node."""
    payload = json.dumps(message).encode()
    return b"%s\n%s\n%s" % (node.encode(), event_signature(key, payload).encode(), payload)


def celery_settings(*, broker_url: str, visibility_timeout: int, result_expires: int) -> dict[str, object]:
    """The Celery settings both sides must share, so that redelivery and priorities agree everywhere.

    visibility_timeout: seconds before Redis hands an unacknowledged case to another worker; it must be
    longer than the longest case, or a case still running would start a second time.
    result_expires: how long chord results and counters live; longer than the longest task takes.
    """
    transport = {
        "visibility_timeout": visibility_timeout,
        "queue_order_strategy": "priority",
        "priority_steps": list(range(10)),
    }
    return {
        "broker_url": broker_url,
        "result_backend": broker_url,
        "broker_transport_options": transport,
        "result_backend_transport_options": {
            "visibility_timeout": visibility_timeout,
            # Give up on an unreachable Redis within seconds (the default keeps a caller waiting ~20 s).
            "retry_policy": {"max_retries": 3, "interval_start": 0, "interval_step": 0.5, "interval_max": 1},
        },
        "broker_connection_retry_on_startup": True,
        # Ride out a broker outage of any length: reconnect forever, every second or two (worker.consumer).
        "broker_connection_max_retries": None,
        "worker_consumer": "worker.consumer:Consumer",
        "result_expires": result_expires,
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        # A running case goes on when the broker goes away; its end is reported once the broker is back.
        # (Cancelling it would also store a result in the absent Redis, which takes the whole worker down.)
        "worker_cancel_long_running_tasks_on_connection_loss": False,
        "task_default_queue": CONTROL_QUEUE,
        "task_create_missing_queues": True,
        "task_default_priority": message_priority(5),
        "worker_send_task_events": True,
        "task_send_sent_event": False,
    }
