"""Recording what the workers report: cases starting and ending, infrastructure errors, heartbeats.

`events_take` is what the recorder thread calls with each batch of raw events: every event is checked on
its own (execution.events); the good ones are written in one transaction, and if that transaction fails,
event by event, so one poison event is set aside (RejectedEvent) and never holds up the rest. A database
that is down is not the events' fault: DatabaseUnavailable tells the recorder to keep the batch and try
again once it is back.
"""

import json
import logging
from dataclasses import dataclass, field

from django.conf import settings
from django.db import DatabaseError, close_old_connections, connection, transaction
from django.utils import timezone

from execution.counts import CountChanges
from execution.events import (
    BadEvent,
    CaseEvent,
    Envelope,
    Event,
    HeartbeatEvent,
    envelope_open,
    event_parse,
    event_verify,
    payload_text,
)
from execution.jobs import cases_publish_again
from execution.models import Case, RejectedEvent, Task
from execution.signing import failures_sign
from messaging import broker
from messaging.revisions import TASKS, revisions_bump
from nodes.models import Node
from nodes.services import (
    HeartbeatSeen,
    InfraErrorStreak,
    node_event_keys,
    node_heartbeats_record,
    node_infra_errors_count,
    node_unverified_heartbeats_record,
)
from nodes.services import node_install_mark_failed as install_mark_failed
from worker.protocol import clean_text

logger = logging.getLogger(__name__)

# PostgreSQL's "try the transaction again" errors (serialization failure, deadlock): not the events' fault.
_RETRY_SQLSTATES = {"40001", "40P01"}


class DatabaseUnavailable(Exception):
    """The database cannot be reached: keep the events, and record them once it is back."""


@dataclass
class RecordingOutcome:
    tasks_to_report: set[int] = field(default_factory=set)
    tasks_with_ended_cases: set[int] = field(default_factory=set)
    recorded: int = 0
    rejected: int = 0


@dataclass(frozen=True)
class _Received:
    raw: bytes
    event: Event


def events_take(*, received: list[bytes]) -> RecordingOutcome:
    """Record a batch of raw events; set aside, with the reason, those that cannot be recorded."""
    rejected: list[tuple[bytes, str]] = []
    envelopes: list[tuple[bytes, Envelope]] = []
    for raw in received:
        try:
            envelopes.append((raw, envelope_open(raw)))
        except BadEvent as error:
            rejected.append((raw, error.reason))
    keys = node_event_keys(names={envelope.node for _, envelope in envelopes})
    good: list[_Received] = []
    for raw, envelope in envelopes:
        try:
            good.append(_Received(raw, event_verify(envelope, keys.get(envelope.node))))
        except BadEvent as error:
            rejected.append((raw, error.reason))
    try:
        outcome = _record_retrying_conflicts([item.event for item in good])
    except DatabaseError as error:
        _raise_if_unreachable(error)
        logger.warning("a batch of %s events failed (%s); recording them one by one", len(good), error)
        outcome = _record_one_by_one(good, rejected)
    except Exception:  # a fault in recording some event: the batch is never tried again as it was
        logger.exception("a batch of %s events could not be recorded; recording them one by one", len(good))
        outcome = _record_one_by_one(good, rejected)
    if rejected:
        rejected_events_store(rejected=rejected)
        node_unverified_heartbeats_record(heartbeats=_heartbeats_among([raw for raw, _ in rejected]))
        outcome.rejected = len(rejected)
    return outcome


def _heartbeats_among(raws: list[bytes]) -> list[HeartbeatSeen]:
    """The heartbeats among events that failed their checks, read as they claim to be (nothing is trusted)."""
    beats = []
    for raw in raws:
        try:
            payload = envelope_open(raw).payload
        except BadEvent:
            payload = raw  # unsigned: an old worker
        try:
            beat = event_parse(payload)
        except BadEvent:
            continue
        if isinstance(beat, HeartbeatEvent):
            beats.append(
                HeartbeatSeen(node=beat.node, version=beat.version, protocol=beat.protocol, queues=beat.queues)
            )
    return beats


def _record_one_by_one(good: list["_Received"], rejected: list[tuple[bytes, str]]) -> RecordingOutcome:
    """Each event in a savepoint of one transaction: an event the database refuses is set aside alone."""
    ended_tasks: set[int] = set()
    recorded = 0
    with transaction.atomic():
        for item in good:
            try:
                with transaction.atomic():
                    ended_tasks |= _events_apply([item.event])
            except DatabaseError as error:
                _raise_if_unreachable(error)
                rejected.append((item.raw, f"the database refused it: {clean_text(str(error), limit=900)}"))
                continue
            except Exception as error:
                logger.exception("an event could not be recorded; set aside")
                fault = clean_text(f"{type(error).__name__}: {error}", limit=900)
                rejected.append((item.raw, f"recording it failed: {fault}"))
                continue
            recorded += 1
    return RecordingOutcome(
        tasks_to_report=_tasks_done(ended_tasks), tasks_with_ended_cases=ended_tasks, recorded=recorded
    )


def _record_retrying_conflicts(events: list[Event], *, attempts: int = 3) -> RecordingOutcome:
    """The batch in one transaction, again when PostgreSQL asks for a retry (a deadlock with another
    recorder); after `attempts`, the error goes up like any other, and the batch is split."""
    for _ in range(attempts - 1):
        try:
            return events_record(events=events)
        except DatabaseError as error:
            if getattr(error.__cause__, "sqlstate", None) not in _RETRY_SQLSTATES:
                raise
    return events_record(events=events)


def _raise_if_unreachable(error: DatabaseError) -> None:
    if not database_reachable():
        raise DatabaseUnavailable(str(error)) from error


def database_reachable() -> bool:
    if not connection.in_atomic_block:  # (inside a transaction a broken connection cannot be replaced anyway)
        close_old_connections()  # drops a connection that broke, so the check below opens a new one
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError:
        return False
    return True


def rejected_events_store(*, rejected: list[tuple[bytes, str]]) -> None:
    RejectedEvent.objects.bulk_create(
        RejectedEvent(node=_claimed_node(raw), reason=clean_text(reason, limit=1000), payload=payload_text(raw))
        for raw, reason in rejected
    )
    for raw, reason in rejected:
        logger.warning("worker event set aside: %s: %.200r", reason, raw)
    rejected_events_prune()


def rejected_events_prune(*, keep: int = 10_000) -> int:
    """Keep the newest `keep` rejected events: a node sending garbage must not fill the database."""
    cutoff = RejectedEvent.objects.order_by("-pk").values_list("pk", flat=True)[keep : keep + 1].first()
    return RejectedEvent.objects.filter(pk__lte=cutoff).delete()[0] if cutoff else 0


def _claimed_node(raw: bytes) -> str:
    try:
        return clean_text(envelope_open(raw).node, limit=100)
    except BadEvent:
        pass
    try:
        node = json.loads(raw).get("node")
    except (ValueError, AttributeError):
        return ""
    return clean_text(node, limit=100) if isinstance(node, str) else ""


# --- the one transaction per batch ----------------------------------------------------------------------------

_RECORDED_FIELDS = [
    "status", "node_id", "attempts", "exit_code", "started_at", "finished_at", "log", "failure", "signature_id",
]  # fmt: skip


def events_record(*, events: list[Event]) -> RecordingOutcome:
    """Apply checked events in one transaction: two statements for the cases, however many.

    Only open cases (queued or running) change, and they are locked while the batch applies: a case is
    ended once, so a redelivered or late event, or one racing a cancel, changes nothing.
    """
    with transaction.atomic():
        ended_tasks = _events_apply(events)
    return RecordingOutcome(
        tasks_to_report=_tasks_done(ended_tasks), tasks_with_ended_cases=ended_tasks, recorded=len(events)
    )


def _events_apply(events: list[Event]) -> set[int]:
    """Apply the events inside the caller's transaction; returns the tasks in which a case ended."""
    case_events = [event for event in events if isinstance(event, CaseEvent)]
    heartbeats = [event for event in events if isinstance(event, HeartbeatEvent)]
    node_ids = dict(Node.objects.filter(name__in={event.node for event in events}).values_list("name", "pk"))
    ended_tasks = _case_events_apply(case_events, node_ids)
    _node_news_apply(case_events, heartbeats, node_ids)
    return ended_tasks


def _case_events_apply(case_events: list[CaseEvent], node_ids: dict[str, int]) -> set[int]:
    """The cases, their tasks' kept counts and start times; returns the tasks in which a case ended."""
    cases = _open_cases_locked({event.case_id for event in case_events})
    before = {pk: (case.status, case.node_id) for pk, case in cases.items()}
    changed, again = _cases_apply(case_events, cases, node_ids)
    failures_sign(changed.values())
    _cases_save(changed.values())
    _counts_follow(changed.values(), before, node_ids)
    if again:
        transaction.on_commit(lambda: _hand_out_again(again))
    _tasks_mark_started(changed.values())
    return {case.task_id for case in changed.values() if case.status not in Case.OPEN_STATUSES}


def _node_news_apply(case_events: list[CaseEvent], heartbeats: list[HeartbeatEvent], node_ids: dict[str, int]) -> None:
    """What the events say of the nodes: installs that could not run, infrastructure error streaks, heartbeats."""
    _installs_mark_failed(case_events, node_ids)
    node_infra_errors_count(streaks=_infra_error_streaks(case_events, node_ids))
    node_heartbeats_record(
        heartbeats=[
            HeartbeatSeen(node=beat.node, version=beat.version, protocol=beat.protocol, queues=beat.queues)
            for beat in heartbeats
        ]
    )


def _counts_follow(cases, before: dict[int, tuple[str, int | None]], node_ids: dict[str, int]) -> None:
    """The tasks' (and their nodes') kept counts follow what the batch changed, in the same transaction."""
    cases = list(cases)
    names = {pk: name for name, pk in node_ids.items()}
    unnamed = {before[case.pk][1] for case in cases} | {case.node_id for case in cases}
    unnamed -= {None, *names}
    names.update(Node.objects.filter(pk__in=unnamed).values_list("pk", "name"))
    counts = CountChanges()
    for case in cases:
        status, node_id = before[case.pk]
        counts.move(
            case.task_id,
            from_status=status,
            to_status=case.status,
            from_node=names.get(node_id),
            to_node=names.get(case.node_id),
        )
        if case.status not in Case.OPEN_STATUSES:
            counts.timed(case.task_id, started_at=case.started_at, finished_at=case.finished_at)
    counts.save()


def _hand_out_again(again: list[tuple[Case, CaseEvent]]) -> None:
    """After a node failed to run cases: make sure it stopped taking their queue, then queue them again."""
    for node, queue in sorted({(event.node, event.queue) for _, event in again if event.queue}):
        try:
            broker.cancel_consumer(node=node, queue=queue, confirm=True)
        except Exception:  # it may take one back: then it fails again, and its streak quarantines it
            logger.warning("node %s did not confirm it stopped consuming %s", node, queue, exc_info=True)
    cases_publish_again([case.pk for case, _ in again])


def _tasks_done(ended_tasks: set[int]) -> set[int]:
    """Of the tasks in which cases ended, those with no open case left, read after the commit: two recorders
    ending a task's last two cases at once each see the other's case open inside their own transactions;
    afterwards, at least the later one sees both ended."""
    return {
        task_id
        for task_id in sorted(ended_tasks)
        if not Case.objects.filter(task_id=task_id, status__in=Case.OPEN_STATUSES).exists()
    }


def _open_cases_locked(case_ids: set[int]) -> dict[int, Case]:
    # In id order, so two recorders locking overlapping batches cannot deadlock.
    open_cases = Case.objects.select_for_update().filter(pk__in=case_ids, status__in=Case.OPEN_STATUSES)
    return {case.pk: case for case in open_cases.order_by("pk").only("pk", "task_id", *_RECORDED_FIELDS)}


def _cases_apply(
    case_events: list[CaseEvent], cases: dict[int, Case], node_ids: dict[str, int]
) -> tuple[dict[int, Case], list[tuple[Case, CaseEvent]]]:
    """Apply the events to their open cases: the cases changed, and those to hand out again (their node could
    not run them), each with the event that said so."""
    changed, again = {}, []
    for event in case_events:
        case = cases.get(event.case_id)
        if case is None or case.status not in Case.OPEN_STATUSES:
            continue
        node_id = node_ids.get(event.node)
        if case.status == Case.Status.RUNNING and case.node_id not in (None, node_id):
            # Running on another node: only that node speaks for it now (a late word from a node that lost it,
            # or a forgery); the first end recorded wins.
            continue
        if event.kind == "infra_error":
            if _infra_error_apply(case, event):
                again.append((case, event))
            changed[case.pk] = case
        elif _apply(case, event, node_id):
            changed[case.pk] = case
    return changed, again


def _infra_error_apply(case: Case, event: CaseEvent) -> bool:
    """A node could not run the case (its install is broken): another node tries while attempts remain.
    True when the case goes back to its queue, False when it ends as an error."""
    case.attempts += 1
    if case.attempts < settings.TESTHUB_CASE_MAX_ATTEMPTS:
        case.status, case.node_id = Case.Status.QUEUED, None
        case.log = f"[TestHub: {event.reason}; handed to another node]\n"
        return True
    case.status, case.finished_at = Case.Status.ERROR, event.at
    case.log = f"[TestHub: infrastructure error, no attempts left] {event.reason}\n"
    return False


def _apply(case: Case, event: CaseEvent, node_id: int | None) -> bool:
    """Apply a start or an end to a case that is still open; False when it changes nothing."""
    if event.kind == "started":
        # Announced once it has run a while: it began at started_at, not when the event was sent.
        case.status, case.node_id, case.started_at = Case.Status.RUNNING, node_id, event.started_at or event.at
        case.attempts += 1
    elif event.kind == "finished":
        case.status, case.exit_code, case.finished_at = event.status, event.exit_code, event.at
        case.node_id = node_id or case.node_id
        case.log = event.log
        if event.started_at and (not event.announced or case.started_at is None):
            case.started_at = event.started_at
        if not event.announced:
            case.attempts += 1  # it ended before it was worth announcing: this is the attempt's only event
    else:
        return False
    return True


def _cases_save(cases) -> None:
    """Write the recorded fields of many cases: one statement, executed as a batch by the driver.

    (bulk_update's CASE WHEN per field and row costs more than the recording it serves.)
    """
    columns = [Case._meta.get_field(name).column for name in _RECORDED_FIELDS]
    assignments = ", ".join(f"{column} = %s" for column in columns)
    rows = [[getattr(case, name) for name in _RECORDED_FIELDS] + [case.pk] for case in cases]
    if rows:
        with connection.cursor() as cursor:
            cursor.executemany(f"UPDATE {Case._meta.db_table} SET {assignments} WHERE id = %s", rows)  # noqa: S608
        revisions_bump(TASKS)


def _tasks_mark_started(cases) -> None:
    first_start: dict[int, object] = {}
    for case in cases:
        first_start.setdefault(case.task_id, case.started_at)
    for task_id in sorted(first_start):
        Task.objects.filter(pk=task_id, status=Task.Status.QUEUED).update(
            status=Task.Status.RUNNING, started_at=first_start[task_id] or timezone.now()
        )


def _installs_mark_failed(case_events: list[CaseEvent], node_ids: dict[str, int]) -> None:
    failures = [event for event in case_events if event.kind == "infra_error" and event.node in node_ids]
    tasks = dict(
        (pk, (product_id, tool_id))
        for pk, product_id, tool_id in Task.objects.filter(pk__in={e.task_id for e in failures}).values_list(
            "pk", "product_id", "tool_id"
        )
    )
    for event in failures:
        if event.task_id in tasks:
            product_id, tool_id = tasks[event.task_id]
            install_mark_failed(
                node_id=node_ids[event.node], product_id=product_id, tool_id=tool_id, reason=event.reason
            )


def _infra_error_streaks(case_events: list[CaseEvent], node_ids: dict[str, int]) -> dict[int, InfraErrorStreak]:
    """In event order: cases that ran normally restart a node's count, infrastructure errors add to it."""
    streaks: dict[int, InfraErrorStreak] = {}
    for event in case_events:
        node_id = node_ids.get(event.node)
        if node_id is None:  # events from nodes TestHub does not know
            continue
        streak = streaks.setdefault(node_id, InfraErrorStreak())
        if event.kind == "infra_error":
            streak.errors += 1
        elif event.kind == "finished" and event.status in (Case.Status.PASSED, Case.Status.FAILED):
            streak.restarted, streak.errors = True, 0
    return streaks
