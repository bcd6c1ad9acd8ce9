"""What the control plane accepts from the workers' event list: each event checked on its own.

Workers are outside the control plane: an event may be malformed, truncated, forged or carry text no
database takes. Each raw event is opened and validated here, alone; one that fails is set aside with the
reason (RejectedEvent) and never holds up the others. An event must be signed with its node's key (nobody
else speaks for a node), a case's event must carry the token only that case's message held (nobody reports
a case it was not given), and it must match its schema: the shapes of worker/protocol.py (CaseEvent,
Heartbeat) with what the recorder insists on: types, ranges, known statuses, timestamps with a time zone,
and text cleaned of what PostgreSQL refuses.
"""

import hmac
from dataclasses import dataclass
from typing import Annotated, Literal

from django.utils.crypto import salted_hmac
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    model_validator,
)

from worker.protocol import clean_text, event_signature

LOG_LIMIT = 256 * 1024
PAYLOAD_KEPT = 4000  # characters of a rejected event kept for a person to look at

NodeName = Annotated[str, Field(min_length=1, max_length=63, pattern=r"^[-a-zA-Z0-9_]+$")]
Id = Annotated[int, Field(gt=0, lt=2**63)]


def _text(limit: int):
    return Annotated[str, AfterValidator(lambda value: clean_text(value, limit=limit))]


class _Event(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class HeartbeatEvent(_Event):
    type: Literal["heartbeat"]
    node: NodeName
    at: AwareDatetime
    version: _text(40) = ""
    protocol: Annotated[int, Field(ge=0, le=1000)] = 0
    slots: Annotated[int, Field(ge=1, le=64)] = 1
    queues: Annotated[list[Annotated[str, Field(max_length=200)]], Field(max_length=1000)] = []


class CaseEvent(_Event):
    type: Literal["case"]
    kind: Literal["started", "finished", "infra_error"]
    case_id: Id
    task_id: Id
    node: NodeName
    at: AwareDatetime
    status: Literal["", "passed", "failed", "error", "cancelled"] = ""
    exit_code: Annotated[int, Field(ge=-(2**31), lt=2**31)] | None = None
    started_at: AwareDatetime | None = None
    log: _text(LOG_LIMIT) = ""
    reason: _text(1000) = ""
    queue: Annotated[str, Field(max_length=200)] = ""
    announced: bool = False
    token: Annotated[str, Field(max_length=64)] = ""

    @model_validator(mode="after")
    def _finished_has_a_status(self) -> "CaseEvent":
        if self.kind == "finished" and not self.status:
            raise ValueError("a finished event needs a status")
        return self


Event = HeartbeatEvent | CaseEvent
_EVENT = TypeAdapter(Annotated[Event, Field(discriminator="type")])


def case_token(case_id: int) -> str:
    """The token a case's run_case message carries, derived from SECRET_KEY: only its receiver learns it."""
    return salted_hmac("testhub.case-token", str(case_id), algorithm="sha256").hexdigest()[:32]


class BadEvent(Exception):
    """An event that cannot be recorded; `reason` says why, for the person reading the rejected events."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Envelope:
    """An event as pushed: which node signed it, the signature, and the event's JSON."""

    node: str
    signature: str
    payload: bytes


def envelope_open(raw: bytes) -> Envelope:
    parts = raw.split(b"\n", 2)
    if len(parts) != 3:
        raise BadEvent("not a signed event: the worker is older than this control plane; deploy it again")
    return Envelope(node=parts[0].decode("utf-8", errors="replace"), signature=parts[1].decode("ascii", "replace"),
                    payload=parts[2])  # fmt: skip


def event_verify(envelope: Envelope, key: str | None) -> Event:
    """The event inside, if its node's key signed it and, for a case, it carries that case's token."""
    if key is None:
        raise BadEvent(f"signed as node {envelope.node[:63]!r}, which TestHub does not know or gave no key")
    if not hmac.compare_digest(event_signature(key, envelope.payload), envelope.signature):
        raise BadEvent(f"its signature is not node {envelope.node}'s: someone else wrote it")
    event = event_parse(envelope.payload)
    if event.node != envelope.node:
        raise BadEvent(f"signed by node {envelope.node} but claims to come from node {event.node}")
    if isinstance(event, CaseEvent) and not hmac.compare_digest(event.token, case_token(event.case_id)):
        raise BadEvent(f"its token is not case {event.case_id}'s: the node was never given that case")
    return event


def event_parse(raw: bytes | str) -> Event:
    """The event in `raw` (one JSON object), checked; BadEvent says what is wrong with it."""
    try:
        return _EVENT.validate_json(raw, strict=True)
    except ValidationError as error:
        raise BadEvent(_reason(error)) from None


def _reason(error: ValidationError) -> str:
    problems = []
    for problem in error.errors(include_url=False, include_input=False)[:5]:
        where = ".".join(str(part) for part in problem["loc"][1:])  # [0] is the union's tag
        problems.append(f"{where}: {problem['msg']}" if where else problem["msg"])
    return clean_text("; ".join(problems), limit=1000)


def payload_text(raw: bytes | str) -> str:
    """A raw event as text a person can read and the database can hold."""
    text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else raw
    return clean_text(text[:PAYLOAD_KEPT])
